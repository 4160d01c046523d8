#Requires -Version 5.1
<#
.SYNOPSIS
    Hibernation test of dumpcrypt in a test VM: hibernates through the filter, then checks
    that Windows resumed from the hibernation image.

.DESCRIPTION
    Run it in a virtual machine (with S4 enabled in the hypervisor) with a snapshot taken
    first, once with HibernationPolicy passthrough and once with encrypt.

    -Phase Before
      checks that dumpcrypt is registered, turns on full hibernation (powercfg /hibernate on,
      powercfg /h /type full), records the time, the boot time and the policy under
      %ProgramData%\dumpcrypt-test, and hibernates (shutdown /h).

    -Phase After (after powering the VM on again)
      * resumed from the hibernation image: the boot time did not change (a resume continues
        the same boot session; a fresh boot starts a new one), and the System log has
        Microsoft-Windows-Kernel-Power event 107 ("The system has resumed from sleep") and
        Microsoft-Windows-Power-Troubleshooter event 1 ("The system has returned from a low
        power state") after the recorded time;
      * the filter is still in place (DumpFilters, dump_dumpcrypt.sys loaded).

    About encrypt: the hibernation stack writes the image through the filter, so the image on
    disk is ciphertext. The boot loader reads it back without the filter, so resume only works
    when a pre-boot component (a disk-encryption product's) decrypts what the boot loader
    reads. Without one, resume fails and Windows boots fresh, losing the session (the boot
    manager may first show a "resume failed" screen: choose to delete the restoration data and
    continue). This script expects that outcome with encrypt unless -PreBootDecryptor is given,
    and reports a resume with encrypt and no decryptor as suspicious.

.PARAMETER Phase
    Before or After.

.PARAMETER PreBootDecryptor
    A pre-boot component that decrypts the hibernation image is installed: with encrypt,
    resume is then expected to succeed.

.PARAMETER Force
    Before: hibernate with HibernationPolicy encrypt and no -PreBootDecryptor (the session
    will be lost).

.EXAMPLE
    .\Test-Hibernate.ps1 -Phase Before

.EXAMPLE
    .\Test-Hibernate.ps1 -Phase After

.NOTES
    Exit codes: 0 passed, 1 failed. It asks for no confirmation (ConfirmImpact Medium), so
    that it runs unattended; -Confirm asks before each change, -Confirm:$false keeps a
    session whose $ConfirmPreference is Medium or lower unattended.
#>
[CmdletBinding(SupportsShouldProcess = $true, ConfirmImpact = 'Medium')]
param(
    [Parameter(Mandatory = $true)]
    [ValidateSet('Before', 'After')]
    [string]$Phase,

    [switch]$PreBootDecryptor,

    [switch]$Force
)

$ErrorActionPreference = 'Stop'
. (Join-Path $PSScriptRoot 'DumpCryptCommon.ps1')

$StateFile = 'hibernate-state.json'

function Get-BootTimeUtc {
    return (Get-CimInstance -ClassName Win32_OperatingSystem).LastBootUpTime.ToUniversalTime()
}

function ConvertTo-UtcTime {
    <# A recorded time: PowerShell 5.1's ConvertFrom-Json leaves it a string, 7 makes it a DateTime. #>
    param($Value)
    if ($Value -is [datetime]) {
        return $Value.ToUniversalTime()
    }
    return [datetime]::Parse([string]$Value, [Globalization.CultureInfo]::InvariantCulture, [Globalization.DateTimeStyles]::RoundtripKind).ToUniversalTime()
}

function Invoke-Before {
    $filters = Get-DumpFilters
    if ((Get-DumpCryptEntryCount $filters) -ne 1) {
        throw 'dumpcrypt.sys is not registered in DumpFilters exactly once: run Install-DumpCrypt.ps1 first.'
    }
    Write-Result PASS ('DumpFilters: {0}' -f ($filters -join ', '))
    $policy = Get-DwordParameter 'HibernationPolicy'
    Write-Result INFO ('Hibernation policy: {0}' -f (Get-PolicyName $policy))
    if ($policy -eq 1 -and -not $PreBootDecryptor) {
        Write-Result WARN ('HibernationPolicy is encrypt and no pre-boot decryptor is declared: the boot loader will read ' +
            'ciphertext, resume will fail and Windows will boot fresh. This session will be lost.')
        if (-not $Force) {
            throw 'Pass -Force to hibernate anyway (expected result: a fresh boot), or -PreBootDecryptor if one is installed.'
        }
    }
    if ($policy -eq 2) {
        Write-Result WARN 'HibernationPolicy is refuse: hibernation should fail to start; the After phase checks that it did not resume.'
    }

    if ($PSCmdlet.ShouldProcess('powercfg', 'Enable full hibernation')) {
        foreach ($arguments in @(@('/hibernate', 'on'), @('/h', '/type', 'full'))) {
            $result = Invoke-Native 'powercfg.exe' $arguments
            if ($result.ExitCode -ne 0) {
                throw ("powercfg {0} failed with exit code {1}: {2}. Does the VM offer S4 (hibernation)?" -f
                    ($arguments -join ' '), $result.ExitCode, ($result.Output -join ' '))
            }
        }
        Write-Result PASS 'Full hibernation is enabled.'
    }

    $state = @{
        HibernateTimeUtc = (Get-Date).ToUniversalTime().ToString('o')
        BootTimeUtc      = (Get-BootTimeUtc).ToString('o')
        HibernationPolicy = $policy
        PreBootDecryptor = [bool]$PreBootDecryptor
    }
    if ($PSCmdlet.ShouldProcess('this computer', 'Hibernate now (shutdown /h)')) {
        Save-TestState -Name $StateFile -State $state
        Write-Result INFO 'Hibernating. Power the VM on again, then run: .\Test-Hibernate.ps1 -Phase After'
        $result = Invoke-Native 'shutdown.exe' @('/h')
        if ($result.ExitCode -ne 0) {
            throw ("shutdown /h failed with exit code {0}: {1}" -f $result.ExitCode, ($result.Output -join ' '))
        }
    }
}

function Invoke-After {
    $state = Read-TestState $StateFile
    if ($null -eq $state) {
        throw 'No recorded hibernation: run -Phase Before first.'
    }
    $failures = 0
    $hibernateTime = ConvertTo-UtcTime $state.HibernateTimeUtc
    $recordedBoot = ConvertTo-UtcTime $state.BootTimeUtc
    $policy = if ($null -eq $state.HibernationPolicy) { 0 } else { [int]$state.HibernationPolicy }
    $currentBoot = Get-BootTimeUtc
    Write-Result INFO ('Hibernation policy during the test: {0}' -f (Get-PolicyName $policy))

    # Boot times read through WMI can differ by a second between reads; more is a new boot.
    $sameBoot = [Math]::Abs(($currentBoot - $recordedBoot).TotalSeconds) -lt 5
    $since = $hibernateTime.ToLocalTime()
    $resumed = @(Get-WinEvent -FilterHashtable @{ LogName = 'System'; ProviderName = 'Microsoft-Windows-Kernel-Power'; Id = 107; StartTime = $since } -ErrorAction SilentlyContinue)
    $returned = @(Get-WinEvent -FilterHashtable @{ LogName = 'System'; ProviderName = 'Microsoft-Windows-Power-Troubleshooter'; Id = 1; StartTime = $since } -ErrorAction SilentlyContinue)
    $entered = @(Get-WinEvent -FilterHashtable @{ LogName = 'System'; ProviderName = 'Microsoft-Windows-Kernel-Power'; Id = 42; StartTime = $since } -ErrorAction SilentlyContinue)
    Write-Result INFO ('Events since the hibernation: Kernel-Power 42 (entering sleep) x{0}, Kernel-Power 107 (resumed) x{1}, Power-Troubleshooter 1 (returned from low power) x{2}' -f
        $entered.Count, $resumed.Count, $returned.Count)
    foreach ($event in $returned) {
        Write-Result INFO ('Power-Troubleshooter: {0}' -f (($event.Message -split "`n") | Where-Object { $_ -match '\S' } | Select-Object -First 4) -join ' / ')
    }
    $didResume = $sameBoot -and ($resumed.Count -gt 0 -or $returned.Count -gt 0)
    if ($sameBoot -and -not $didResume) {
        Write-Result WARN 'Same boot session but no resume event: did the machine hibernate at all?'
    }

    $expectResume = ($policy -eq 0) -or ($policy -eq 1 -and [bool]$state.PreBootDecryptor)
    if ($policy -eq 0 -or $expectResume) {
        if ($didResume) {
            Write-Result PASS 'Resumed from the hibernation image (same boot session, resume events logged).'
        } else {
            Write-Result FAIL ('Windows did not resume from the hibernation image (boot time {0:u}, was {1:u}): the image was unreadable or rejected.' -f $currentBoot, $recordedBoot)
            $failures++
        }
    } elseif ($policy -eq 1) {
        if ($didResume) {
            Write-Result WARN ('Resumed although the image should be ciphertext and no pre-boot decryptor was declared: check that ' +
                'HibernationPolicy was really encrypt in the hibernation stack (the configuration is read when the stack loads).')
        } else {
            Write-Result PASS ('Encrypt without a pre-boot decryptor: Windows booted fresh, as expected. The hibernation image ' +
                'was unreadable to the boot loader; the session was lost.')
        }
    } elseif ($policy -eq 2) {
        if ($didResume) {
            Write-Result FAIL 'Refuse: the machine hibernated and resumed, so the hibernation stack wrote an image.'
            $failures++
        } else {
            Write-Result PASS 'Refuse: no resume from a hibernation image.'
        }
    } else {
        Write-Result FAIL "Invalid HibernationPolicy ${policy}: the filter must have refused the hibernation; configure a valid policy to test."
        $failures++
    }

    $filters = Get-DumpFilters
    if ((Get-DumpCryptEntryCount $filters) -eq 1) {
        Write-Result PASS ('The filter is in place: DumpFilters {0}' -f ($filters -join ', '))
    } else {
        Write-Result FAIL 'dumpcrypt.sys is no longer registered exactly once in DumpFilters.'
        $failures++
    }
    $modules = Get-LoadedKernelModule
    if (@($modules | Where-Object { $_ -ieq 'dump_dumpcrypt.sys' }).Count -gt 0) {
        Write-Result PASS 'dump_dumpcrypt.sys (crash dump stack) is loaded.'
    } else {
        Write-Result WARN 'dump_dumpcrypt.sys is not loaded: crash dumps would not go through the filter.'
    }
    if (@($modules | Where-Object { $_ -ieq 'hiber_dumpcrypt.sys' }).Count -gt 0) {
        Write-Result WARN 'hiber_dumpcrypt.sys is still loaded after resume: Dump_Unload should have run.'
    }

    if ($failures -gt 0) {
        Write-Result FAIL "$failures check(s) failed."
        exit 1
    }
    Write-Result PASS 'Hibernation test passed.'
    exit 0
}

try {
    Assert-Administrator
    if ($Phase -eq 'Before') {
        Invoke-Before
    } else {
        Invoke-After
    }
} catch {
    Write-Result FAIL $_.Exception.Message
    exit 1
}
