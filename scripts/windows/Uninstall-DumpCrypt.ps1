#Requires -Version 5.1
<#
.SYNOPSIS
    Removes dumpcrypt: its DumpFilters entry (and only it), its configuration, its driver package.

.DESCRIPTION
    In this order, so that no boot ever finds a DumpFilters entry without its file:
      1. removes dumpcrypt.sys from HKLM\SYSTEM\CurrentControlSet\Control\CrashControl\DumpFilters,
         keeping every other entry in its order;
      2. exports Parameters\SealedKeys (the sealed key source's keys, sealed to the
         administrator) to %ProgramData%\dumpcrypt-SealedKeys-<UTC time>.reg, so that dumps
         written before stay readable; overwrites the Key value with zeros, then deletes the
         Parameters key (registry hives keep old data in free cells and transaction logs for
         a while: the overwrite is a best effort, not an erasure);
      3. deletes the driver package: pnputil /delete-driver oemNN.inf /uninstall on Windows 10
         1903 and later; on older systems the INF's [DefaultUninstall.NT<arch>] section (give
         -PackagePath);
      4. removes what the package removal left behind (the service entry, the image in
         System32\drivers) and checks that DumpFilters still holds exactly the other entries,
         restoring them if the removal lost any.
    Running it again is safe. Reboot afterwards: the crash dump stack keeps its loaded copy
    (dump_dumpcrypt.sys) until then.

.PARAMETER PackagePath
    Only for systems before Windows 10 1903: the folder holding the dumpcrypt.inf that was
    installed, whose [DefaultUninstall.NT<arch>] section is run.

.EXAMPLE
    .\Uninstall-DumpCrypt.ps1

.EXAMPLE
    .\Uninstall-DumpCrypt.ps1 -WhatIf

.NOTES
    Exit code 0 on success, 1 on failure. Needs an elevated, 64-bit PowerShell. It asks for
    no confirmation (ConfirmImpact Medium); -Confirm asks before each change, and
    -Confirm:$false keeps a session whose $ConfirmPreference is Medium or lower unattended.
#>
[CmdletBinding(SupportsShouldProcess = $true, ConfirmImpact = 'Medium')]
param(
    [string]$PackagePath
)

$ErrorActionPreference = 'Stop'
. (Join-Path $PSScriptRoot 'DumpCryptCommon.ps1')

try {
    Assert-Administrator
    if (-not [Environment]::Is64BitProcess) {
        throw 'Run this from 64-bit PowerShell: 32-bit PowerShell sees redirected System32 and registry views.'
    }
    $failures = 0

    # 1. The DumpFilters entry.
    $before = Get-DumpFilters
    $others = Get-OtherDumpFilters $before
    if ((Get-DumpCryptEntryCount $before) -gt 0) {
        if ($PSCmdlet.ShouldProcess('CrashControl\DumpFilters', "Remove $script:DriverFile (keep: $($others -join ', '))")) {
            Set-DumpFilters $others
            Write-Result PASS ('DumpFilters: {0}' -f ($(if ($others.Count) { $others -join ', ' } else { '(empty)' })))
        }
    } else {
        Write-Result INFO 'dumpcrypt.sys is not in DumpFilters.'
    }

    # 2. The configuration.
    if (Test-Path -LiteralPath $script:ParametersPath) {
        if ($PSCmdlet.ShouldProcess($script:ParametersPath, 'Overwrite the key with zeros and delete the configuration')) {
            # The sealed keys are the only way to read dumps written before now: keep a copy
            # (sealed to the administrator's identity, harmless on the disk).
            if (Test-Path -LiteralPath (Join-Path $script:ParametersPath 'SealedKeys')) {
                $export = Join-Path $env:ProgramData ('dumpcrypt-SealedKeys-{0}.reg' -f
                    (Get-Date).ToUniversalTime().ToString('yyyyMMddTHHmmssZ'))
                $result = Invoke-Native 'reg.exe' @('export',
                    'HKLM\SYSTEM\CurrentControlSet\Services\dumpcrypt\Parameters\SealedKeys', $export, '/y')
                if ($result.ExitCode -ne 0) {
                    throw ("reg export of the sealed keys failed with exit code {0} ({1}); nothing was deleted." -f
                        $result.ExitCode, ($result.Output -join ' '))
                }
                Write-Result INFO ("Sealed keys saved to $export (readable only with the administrator's identity): " +
                    'dumps written before now stay readable with dumpcrypt recover --identity.')
            }
            $parameters = Get-Item -LiteralPath $script:ParametersPath
            if ($null -ne $parameters.GetValue('Key', $null)) {
                $length = ([byte[]]$parameters.GetValue('Key')).Length
                Set-ItemProperty -LiteralPath $script:ParametersPath -Name 'Key' -Value (New-Object byte[] ([Math]::Max($length, 64))) -Type Binary
            }
            Remove-Item -LiteralPath $script:ParametersPath -Recurse -Force
            Write-Result PASS 'Parameters key deleted (the Key value was zeroed first).'
        }
    }

    # 3. The driver package.
    $build = [Environment]::OSVersion.Version.Build
    if ($build -ge 18362) {
        foreach ($published in (Find-DumpCryptPackage)) {
            if ($PSCmdlet.ShouldProcess($published, 'pnputil /delete-driver /uninstall')) {
                $result = Invoke-Native 'pnputil.exe' @('/delete-driver', $published, '/uninstall')
                $result.Output | ForEach-Object { Write-Verbose $_ }
                if ($result.ExitCode -eq 0 -or $result.ExitCode -eq 3010) {
                    Write-Result PASS "Driver package $published deleted."
                } else {
                    Write-Result FAIL ("pnputil /delete-driver {0} failed with exit code {1}: {2}" -f $published, $result.ExitCode, ($result.Output -join ' '))
                    $failures++
                }
            }
        }
    } elseif ($PackagePath) {
        $inf = Join-Path $PackagePath 'dumpcrypt.inf'
        if (-not (Test-Path -LiteralPath $inf -PathType Leaf)) {
            throw "No dumpcrypt.inf in '$PackagePath'."
        }
        $arch = if ($env:PROCESSOR_ARCHITECTURE -eq 'ARM64') { 'arm64' } else { 'amd64' }
        if ($PSCmdlet.ShouldProcess($inf, "Run [DefaultUninstall.NT$arch]")) {
            $rundll = Join-Path $env:windir 'System32\rundll32.exe'
            $process = Start-Process -FilePath $rundll -ArgumentList @('setupapi.dll,InstallHinfSection', "DefaultUninstall.NT$arch", '128', "`"$inf`"") -Wait -PassThru
            if ($process.ExitCode -ne 0) {
                Write-Result FAIL "InstallHinfSection DefaultUninstall.NT$arch failed with exit code $($process.ExitCode)."
                $failures++
            }
        }
    } else {
        Write-Result WARN 'Windows before 1903: without -PackagePath only the leftovers below are removed.'
    }

    # 4. Leftovers, and the other filters.
    if (Test-Path -LiteralPath $script:ServicePath) {
        if ($PSCmdlet.ShouldProcess('service dumpcrypt', 'Delete the service entry')) {
            $result = Invoke-Native 'sc.exe' @('delete', $script:ServiceName)
            # 1060: the service does not exist; 1072: marked for deletion (gone after reboot).
            if ($result.ExitCode -eq 0 -or $result.ExitCode -eq 1060 -or $result.ExitCode -eq 1072) {
                Write-Result PASS 'Service entry dumpcrypt deleted.'
            } else {
                Write-Result FAIL ("sc delete dumpcrypt failed with exit code {0}: {1}" -f $result.ExitCode, ($result.Output -join ' '))
                $failures++
            }
        }
    }
    $image = Join-Path $env:windir 'System32\drivers\dumpcrypt.sys'
    if (Test-Path -LiteralPath $image) {
        if ($PSCmdlet.ShouldProcess($image, 'Delete')) {
            try {
                Remove-Item -LiteralPath $image -Force
                Write-Result PASS "$image deleted."
            } catch {
                Write-Result WARN "$image is in use ($($_.Exception.Message)); reboot and run this script again."
            }
        }
    }

    if (-not $WhatIfPreference) {
        $after = Get-DumpFilters
        if ((Get-DumpCryptEntryCount $after) -gt 0 -or -not (Test-SameEntries $others $after)) {
            Set-DumpFilters $others
            Write-Result FAIL ('The package removal changed DumpFilters (now: {0}); restored to: {1}. Report this.' -f
                ($after -join ', '), ($others -join ', '))
            $failures++
        } else {
            Write-Result PASS ('DumpFilters keeps its other entries: {0}' -f ($(if ($after.Count) { $after -join ', ' } else { '(empty)' })))
        }
    }

    if ($failures -gt 0) {
        exit 1
    }
    Write-Result INFO 'Reboot to unload the crash dump stack''s copy of the filter (dump_dumpcrypt.sys).'
    exit 0
} catch {
    Write-Result FAIL $_.Exception.Message
    exit 1
}
