#Requires -Version 5.1
<#
.SYNOPSIS
    Crash test of dumpcrypt in a test VM: crashes the machine with NotMyFault, then checks
    what the crash dump stack wrote through the filter.

.DESCRIPTION
    Run it in a virtual machine with a snapshot taken first. Two phases, across a reboot.

    -Phase Before
      1. checks that this boot has test signing on and that dumpcrypt is registered;
      2. sets a kernel memory dump (CrashDumpEnabled = 2) to %SystemRoot%\MEMORY.DMP,
         overwriting, and kept even when disk space is low. With the crash dump policy
         passthrough or refuse it reboots automatically after the crash (AutoReboot = 1).
         With encrypt it must not lose the dump it tests (docs/recovery.md): Windows cannot
         recognise an encrypted dump at the next boot and would reuse the page file it lies
         in, so the dump goes to a dedicated dump file (DedicatedDumpFile =
         %SystemDrive%\dumpcrypt-dedicated.dmp, DumpFileSize = the memory size + 256 MB),
         which nothing else writes to, and the machine stops at the bug check screen
         (AutoReboot = 0): power the VM off and take a raw image of its disk before it
         boots again;
      3. enables Driver Verifier (standard flags) on dumpcrypt.sys;
      4. if anything of 2-3 changed, or the crash dump stack has not loaded dump_dumpcrypt.sys
         yet, stops here with exit code 3010: these take effect at boot. Reboot (or pass
         -Reboot) and run -Phase Before again;
      5. with encrypt, records where the dedicated dump file lies (fsutil file queryExtents)
         and where its partition starts, for the recovery;
      6. records the time, the configuration and the boot time under %ProgramData%\dumpcrypt-test
         and crashes the machine: notmyfault64.exe /crash (bug check 0xD1 from myfault.sys).

    -Phase After (after the machine rebooted)
      * the bug check is recorded (System log, Microsoft-Windows-WER-SystemErrorReporting
        event 1001; Kernel-Power event 41 as a fallback) and is NotMyFault's, not dumpcrypt's
        (0x44435259) nor one of Driver Verifier's (0xC4, 0xC9, 0xC1, 0xD6, 0xE6);
      * with the crash dump policy passthrough: MEMORY.DMP was written after the crash and
        starts with the 'PAGE' 'DU64' signatures (offsets 0 and 4);
      * with encrypt: the dump's blocks inside the encrypted area reached the disk as
        ciphertext, so Windows cannot recognise the dump at boot and, unless a disk-encryption
        product decrypts it on the way back, no readable MEMORY.DMP appears. The dump stays
        in the dedicated dump file; the script shows the extents and the partition offset
        recorded before the crash, and the commands that recover it from the disk image
        taken while the VM was off (docs/recovery.md);
      * with refuse: no new dump was written;
      * Driver Verifier raised nothing against dumpcrypt (`verifier /query`, and the bug check
        above), and volmgr logged no crash dump initialization failure.
    With -Cleanup, After also turns Driver Verifier off again if Before turned it on, and puts
    back the crash dump settings (DedicatedDumpFile, DumpFileSize, AutoReboot) Before changed.

.PARAMETER Phase
    Before or After.

.PARAMETER NotMyFaultPath
    Path of Sysinternals' notmyfault64.exe (Before only). Run it once by hand first to accept
    its license.

.PARAMETER ExpectedBugCheck
    The bug check NotMyFault causes. Default 0xD1 (DRIVER_IRQL_NOT_LESS_OR_EQUAL, /crash).

.PARAMETER Reboot
    Before: reboot by itself when settings need a reboot to take effect.

.PARAMETER Cleanup
    After: turn Driver Verifier off if Before turned it on, and restore the crash dump
    settings Before changed.

.EXAMPLE
    .\Test-CrashDump.ps1 -Phase Before -NotMyFaultPath C:\Tools\notmyfault64.exe -Reboot

.EXAMPLE
    .\Test-CrashDump.ps1 -Phase After -Cleanup

.NOTES
    Exit codes: 0 passed, 1 failed, 3010 (Before) reboot needed first. It asks for no
    confirmation (ConfirmImpact Medium), so that it runs unattended; -Confirm asks before
    each change, -Confirm:$false keeps a session whose $ConfirmPreference is Medium or lower
    unattended. -WhatIf shows what it would change, and does not crash the machine.
#>
[CmdletBinding(SupportsShouldProcess = $true, ConfirmImpact = 'Medium')]
param(
    [Parameter(Mandatory = $true)]
    [ValidateSet('Before', 'After')]
    [string]$Phase,

    [string]$NotMyFaultPath,

    [UInt32]$ExpectedBugCheck = 0xD1,

    [switch]$Reboot,

    [switch]$Cleanup
)

$ErrorActionPreference = 'Stop'
. (Join-Path $PSScriptRoot 'DumpCryptCommon.ps1')

$StateFile = 'crash-state.json'
$CrashControlStateFile = 'crashcontrol-before.json'
$DedicatedDumpFile = Join-Path $env:SystemDrive 'dumpcrypt-dedicated.dmp'
$MemoryManagementPath = 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management'
$VerifierBugChecks = @(0xC1, 0xC4, 0xC9, 0xD6, 0xE6)

function Get-VerifiedDriverList {
    $value = (Get-Item -LiteralPath $MemoryManagementPath).GetValue('VerifyDrivers', $null)
    if ($null -eq $value) {
        return ,@()
    }
    return ,@("$value" -split '\s+' | Where-Object { $_ -ne '' })
}

function Set-RegistryDword {
    <# Sets a DWORD; returns $true when it changed. #>
    param([string]$Path, [string]$Name, [int]$Value)
    $current = (Get-Item -LiteralPath $Path).GetValue($Name, $null)
    if (($null -ne $current) -and ([int]$current -eq $Value)) {
        return $false
    }
    if ($PSCmdlet.ShouldProcess("$Path\$Name", "Set to $Value")) {
        Set-ItemProperty -LiteralPath $Path -Name $Name -Value $Value -Type DWord
    }
    return $true
}

function Set-RegistryString {
    <# Sets a REG_SZ; returns $true when it changed. #>
    param([string]$Path, [string]$Name, [string]$Value)
    $current = (Get-Item -LiteralPath $Path).GetValue($Name, $null, 'DoNotExpandEnvironmentNames')
    if (($null -ne $current) -and ("$current" -ieq $Value)) {
        return $false
    }
    if ($PSCmdlet.ShouldProcess("$Path\$Name", "Set to $Value")) {
        Set-ItemProperty -LiteralPath $Path -Name $Name -Value $Value -Type String
    }
    return $true
}

function Save-CrashControlBefore {
    <# The crash dump settings this test may change, as they were, saved once (for -Cleanup). #>
    if ($null -ne (Read-TestState $CrashControlStateFile)) {
        return
    }
    $key = Get-Item -LiteralPath $script:CrashControlPath
    $saved = @{}
    foreach ($name in 'DedicatedDumpFile', 'DumpFileSize', 'AutoReboot') {
        $saved[$name] = $key.GetValue($name, $null, 'DoNotExpandEnvironmentNames')
    }
    Save-TestState -Name $CrashControlStateFile -State $saved
}

function Restore-CrashControlBefore {
    $saved = Read-TestState $CrashControlStateFile
    if ($null -eq $saved) {
        return
    }
    foreach ($name in 'DedicatedDumpFile', 'DumpFileSize', 'AutoReboot') {
        $value = $saved.$name
        if ($PSCmdlet.ShouldProcess("CrashControl\$name", "Restore to $(if ($null -eq $value) { '(absent)' } else { $value })")) {
            if ($null -eq $value) {
                Remove-ItemProperty -LiteralPath $script:CrashControlPath -Name $name -ErrorAction SilentlyContinue
            } elseif ($name -eq 'DedicatedDumpFile') {
                Set-ItemProperty -LiteralPath $script:CrashControlPath -Name $name -Value ([string]$value) -Type String
            } else {
                Set-ItemProperty -LiteralPath $script:CrashControlPath -Name $name -Value ([int]$value) -Type DWord
            }
        }
    }
    if (-not $WhatIfPreference) {
        Remove-Item -LiteralPath (Join-Path $script:StatePath $CrashControlStateFile) -Force
    }
    Write-Result INFO 'Crash dump settings restored (DedicatedDumpFile, DumpFileSize, AutoReboot); they take effect at boot.'
}

function Get-DumpFilePath {
    $raw = (Get-Item -LiteralPath $script:CrashControlPath).GetValue('DumpFile', '%SystemRoot%\MEMORY.DMP', 'DoNotExpandEnvironmentNames')
    return [Environment]::ExpandEnvironmentVariables($raw)
}

function Get-BugCheckSince {
    <# The bug check codes recorded since $Since: WER 1001 first, Kernel-Power 41 as a fallback. #>
    param([datetime]$Since)
    $codes = @()
    $wer = @(Get-WinEvent -FilterHashtable @{ LogName = 'System'; ProviderName = 'Microsoft-Windows-WER-SystemErrorReporting'; Id = 1001; StartTime = $Since } -ErrorAction SilentlyContinue)
    foreach ($event in $wer) {
        Write-Result INFO ('WER 1001 at {0}: {1}' -f $event.TimeCreated, ($event.Message -split "`n")[0])
        $text = ($event.Properties | ForEach-Object { "$($_.Value)" }) -join ' '
        if ($text -match '0x([0-9a-fA-F]{8})') {
            $codes += [Convert]::ToUInt32($Matches[1], 16)
        }
    }
    if ($codes.Count -eq 0) {
        $power = @(Get-WinEvent -FilterHashtable @{ LogName = 'System'; ProviderName = 'Microsoft-Windows-Kernel-Power'; Id = 41; StartTime = $Since } -ErrorAction SilentlyContinue)
        foreach ($event in $power) {
            # Kernel-Power 41's first data item is BugcheckCode (decimal; 0 when there was none).
            $code = [UInt32]$event.Properties[0].Value
            Write-Result INFO ('Kernel-Power 41 at {0}: BugcheckCode 0x{1:X}' -f $event.TimeCreated, $code)
            if ($code -ne 0) {
                $codes += $code
            }
        }
    }
    return ,$codes
}

function ConvertTo-UtcTime {
    <# A recorded time: PowerShell 5.1's ConvertFrom-Json leaves it a string, 7 makes it a DateTime. #>
    param($Value)
    if ($Value -is [datetime]) {
        return $Value.ToUniversalTime()
    }
    return [datetime]::Parse([string]$Value, [Globalization.CultureInfo]::InvariantCulture, [Globalization.DateTimeStyles]::RoundtripKind).ToUniversalTime()
}

function Test-DumpHeader {
    <# True when the file starts with 'PAGE' then 'DU64': the header of a 64-bit Windows dump. #>
    param([string]$Path)
    $stream = [IO.File]::Open($Path, 'Open', 'Read', 'ReadWrite')
    try {
        $header = New-Object byte[] 8
        $read = $stream.Read($header, 0, 8)
    } finally {
        $stream.Dispose()
    }
    if ($read -lt 8) {
        return $false
    }
    return ([Text.Encoding]::ASCII.GetString($header, 0, 4) -eq 'PAGE') -and ([Text.Encoding]::ASCII.GetString($header, 4, 4) -eq 'DU64')
}

function Invoke-Before {
    if (-not $NotMyFaultPath) {
        throw 'Give -NotMyFaultPath (Sysinternals notmyfault64.exe).'
    }
    if (-not (Test-Path -LiteralPath $NotMyFaultPath -PathType Leaf)) {
        throw "NotMyFault not found at '$NotMyFaultPath'."
    }
    $eula = Get-ItemProperty -LiteralPath 'HKCU:\Software\Sysinternals\NotMyFault' -Name 'EulaAccepted' -ErrorAction SilentlyContinue
    if ($null -eq $eula -or $eula.EulaAccepted -ne 1) {
        throw "Run '$NotMyFaultPath' once by hand and accept its license; this script does not accept it for you."
    }
    if (-not (Test-TestSigningActive)) {
        throw 'Test signing is off in this boot: run `bcdedit /set testsigning on` (Secure Boot must be off) and reboot.'
    }
    Write-Result PASS 'Test signing is on.'
    $filters = Get-DumpFilters
    if ((Get-DumpCryptEntryCount $filters) -ne 1) {
        throw 'dumpcrypt.sys is not registered in DumpFilters exactly once: run Install-DumpCrypt.ps1 first.'
    }
    Write-Result PASS ('DumpFilters: {0}' -f ($filters -join ', '))

    $crashPolicy = Get-DwordParameter 'CrashDumpPolicy'
    $encrypt = ($crashPolicy -eq 1)
    $needsReboot = $false
    if (-not $WhatIfPreference) {
        Save-CrashControlBefore
    }
    # With encrypt the machine stops at the bug check screen: its disk is imaged before the
    # next boot (docs/recovery.md).
    $autoReboot = if ($encrypt) { 0 } else { 1 }
    foreach ($setting in @(@('CrashDumpEnabled', 2), @('Overwrite', 1), @('AutoReboot', $autoReboot), @('AlwaysKeepMemoryDump', 1))) {
        if (Set-RegistryDword -Path $script:CrashControlPath -Name $setting[0] -Value $setting[1]) {
            Write-Result INFO ('CrashControl\{0} set to {1}.' -f $setting[0], $setting[1])
            $needsReboot = $true
        }
    }
    if ($encrypt) {
        # A dedicated dump file: nothing else writes to it, so the encrypted dump survives
        # the boot that cannot read it. Large enough for a kernel dump of all of memory.
        $memoryMb = [int][Math]::Ceiling((Get-CimInstance -ClassName Win32_ComputerSystem).TotalPhysicalMemory / 1048576)
        if (Set-RegistryString -Path $script:CrashControlPath -Name 'DedicatedDumpFile' -Value $DedicatedDumpFile) {
            Write-Result INFO "CrashControl\DedicatedDumpFile set to $DedicatedDumpFile."
            $needsReboot = $true
        }
        if (Set-RegistryDword -Path $script:CrashControlPath -Name 'DumpFileSize' -Value ($memoryMb + 256)) {
            Write-Result INFO ('CrashControl\DumpFileSize set to {0} MB.' -f ($memoryMb + 256))
            $needsReboot = $true
        }
    }
    $pageFiles = @(Get-CimInstance -ClassName Win32_PageFileUsage -ErrorAction SilentlyContinue)
    $dedicated = (Get-Item -LiteralPath $script:CrashControlPath).GetValue('DedicatedDumpFile', $null)
    if ($pageFiles.Count -eq 0 -and $null -eq $dedicated) {
        Write-Result WARN 'No page file and no DedicatedDumpFile: Windows has nowhere to write a kernel dump.'
    }

    $verified = Get-VerifiedDriverList
    $verifierWasOn = ($verified.Count -gt 0)
    if (@($verified | Where-Object { $_ -ieq $script:DriverFile }).Count -eq 0) {
        if ($PSCmdlet.ShouldProcess($script:DriverFile, 'Enable Driver Verifier (standard flags)')) {
            # verifier keeps the drivers already listed only with /adddriver; /standard /driver
            # replaces the list, so add to an existing list instead.
            if ($verifierWasOn) {
                $result = Invoke-Native 'verifier.exe' @('/adddriver', $script:DriverFile)
            } else {
                $result = Invoke-Native 'verifier.exe' @('/standard', '/driver', $script:DriverFile)
            }
            # verifier returns 2 when the change needs a reboot.
            if ($result.ExitCode -ne 0 -and $result.ExitCode -ne 2) {
                throw ("verifier failed with exit code {0}: {1}" -f $result.ExitCode, ($result.Output -join ' '))
            }
            Write-Result INFO 'Driver Verifier enabled on dumpcrypt.sys.'
        }
        Save-TestState -Name 'verifier.json' -State @{ EnabledByTest = (-not $verifierWasOn) }
        $needsReboot = $true
    } else {
        Write-Result PASS 'Driver Verifier is set on dumpcrypt.sys.'
    }

    $modules = Get-LoadedKernelModule
    if (@($modules | Where-Object { $_ -ieq 'dump_dumpcrypt.sys' }).Count -eq 0) {
        Write-Result INFO 'The crash dump stack has not loaded dump_dumpcrypt.sys yet.'
        $needsReboot = $true
    } else {
        Write-Result PASS 'dump_dumpcrypt.sys is loaded.'
    }
    $query = Invoke-Native 'verifier.exe' @('/query')
    if ($query.ExitCode -ne 0) {
        Write-Result WARN ('verifier /query failed with exit code {0}: {1}' -f $query.ExitCode, ($query.Output -join ' '))
    } elseif (($query.Output -join "`n") -match 'dumpcrypt') {
        Write-Result PASS 'verifier /query lists dumpcrypt.'
    } elseif (-not $needsReboot) {
        Write-Result WARN ('verifier /query does not list dumpcrypt although it is set and loaded: Driver Verifier may ' +
            'not apply to the dump stack''s dump_ copy. The crash test still runs.')
    }

    if ($needsReboot) {
        Write-Result INFO 'Settings take effect at boot. Reboot, then run -Phase Before again.'
        if ($Reboot -and $PSCmdlet.ShouldProcess('this computer', 'Reboot')) {
            Restart-Computer -Force
        }
        exit 3010
    }

    $state = @{
        CrashTimeUtc     = (Get-Date).ToUniversalTime().ToString('o')
        BootTimeUtc      = (Get-CimInstance -ClassName Win32_OperatingSystem).LastBootUpTime.ToUniversalTime().ToString('o')
        CrashDumpPolicy  = $crashPolicy
        DumpFile         = Get-DumpFilePath
        ExpectedBugCheck = $ExpectedBugCheck
        DedicatedDumpFile = $null
        Extents          = @()
        PartitionOffset  = $null
    }
    Write-Result INFO ('Crash dump policy: {0}' -f (Get-PolicyName $crashPolicy))
    if ($encrypt) {
        # Where the encrypted dump will lie, for the recovery from the disk image.
        if (-not (Test-Path -LiteralPath $DedicatedDumpFile -PathType Leaf)) {
            throw "$DedicatedDumpFile does not exist although DedicatedDumpFile names it: Windows creates it at boot; reboot and run -Phase Before again."
        }
        $extents = Invoke-Native 'fsutil.exe' @('file', 'queryExtents', $DedicatedDumpFile)
        if ($extents.ExitCode -ne 0) {
            throw ("fsutil file queryExtents {0} failed with exit code {1}: {2}" -f $DedicatedDumpFile, $extents.ExitCode, ($extents.Output -join ' '))
        }
        $drive = $env:SystemDrive.TrimEnd(':')
        $partition = Get-Partition -DriveLetter $drive
        $state.DedicatedDumpFile = $DedicatedDumpFile
        $state.Extents = @($extents.Output | Where-Object { $_ -match '\S' })
        $state.PartitionOffset = [UInt64]$partition.Offset
        Write-Result INFO ('{0} lies at (fsutil file queryExtents; clusters):' -f $DedicatedDumpFile)
        foreach ($line in $state.Extents) {
            Write-Result INFO "  $line"
        }
        Write-Result INFO ('Its partition starts at byte {0} of the disk (dumpcrypt decrypt --partition-offset {0}).' -f $state.PartitionOffset)
        Write-Result WARN ('After the crash the VM stops at the bug check screen (AutoReboot = 0). Power it off and take a raw ' +
            'image of its disk BEFORE it boots again (docs\recovery.md); then boot it and run -Phase After.')
    }
    if ($PSCmdlet.ShouldProcess('this computer', 'Crash it now with NotMyFault (bug check)')) {
        Save-TestState -Name $StateFile -State $state
        Write-Result INFO 'Crashing. After the reboot run: .\Test-CrashDump.ps1 -Phase After'
        Start-Sleep -Seconds 2
        & $NotMyFaultPath /crash
        $crashExit = $LASTEXITCODE
        Start-Sleep -Seconds 60
        throw "NotMyFault returned (exit code $crashExit) and the machine is still running."
    }
}

function Invoke-After {
    $state = Read-TestState $StateFile
    if ($null -eq $state) {
        throw 'No recorded crash: run -Phase Before first.'
    }
    $failures = 0
    $crashTime = ConvertTo-UtcTime $state.CrashTimeUtc
    $bootTime = (Get-CimInstance -ClassName Win32_OperatingSystem).LastBootUpTime.ToUniversalTime()
    if ($bootTime -le $crashTime) {
        throw 'This boot started before the recorded crash: the crash did not happen (or was recorded twice).'
    }
    Write-Result PASS ('Rebooted at {0:u} after the crash at {1:u}.' -f $bootTime, $crashTime)
    $since = $crashTime.ToLocalTime()
    # No value means the default, passthrough.
    $policy = if ($null -eq $state.CrashDumpPolicy) { 0 } else { [int]$state.CrashDumpPolicy }
    Write-Result INFO ('Crash dump policy during the crash: {0}' -f (Get-PolicyName $policy))

    $codes = Get-BugCheckSince -Since $since
    if ($codes.Count -eq 0) {
        if ($policy -eq 1 -or $policy -eq 2) {
            Write-Result INFO 'No bug check event: expected when no readable dump reached the disk (encrypt or refuse).'
        } else {
            Write-Result FAIL 'No bug check was recorded (no WER 1001, no Kernel-Power 41 with a code).'
            $failures++
        }
    }
    foreach ($code in $codes) {
        if ($code -eq $script:DumpCryptBugCheck) {
            if ($policy -eq 2) {
                Write-Result INFO 'dumpcrypt bug checked (0x44435259): refuse policy, the stack wrote anyway and the filter stopped it.'
            } else {
                Write-Result FAIL 'dumpcrypt bug checked (0x44435259) during the dump: open the dump or the debugger and see the README''s parameter table.'
                $failures++
            }
        } elseif ($VerifierBugChecks -contains $code) {
            Write-Result FAIL ('Driver Verifier bug check 0x{0:X}: run !analyze -v on the dump.' -f $code)
            $failures++
        } elseif ($code -eq [UInt32]$state.ExpectedBugCheck) {
            Write-Result PASS ('Bug check 0x{0:X} from NotMyFault.' -f $code)
        } else {
            Write-Result FAIL ('Unexpected bug check 0x{0:X} (expected 0x{1:X}).' -f $code, [UInt32]$state.ExpectedBugCheck)
            $failures++
        }
    }

    $volmgr = @(Get-WinEvent -FilterHashtable @{ LogName = 'System'; ProviderName = 'volmgr'; StartTime = $since } -ErrorAction SilentlyContinue)
    foreach ($event in $volmgr) {
        # 45/46: the dump driver could not be loaded / crash dump initialization failed;
        # 161/162: dump file creation failed.
        Write-Result WARN ('volmgr {0}: {1}' -f $event.Id, ($event.Message -split "`n")[0])
    }

    $dumpFile = $state.DumpFile
    $fresh = $false
    if (Test-Path -LiteralPath $dumpFile -PathType Leaf) {
        $item = Get-Item -LiteralPath $dumpFile
        $fresh = $item.LastWriteTimeUtc -gt $crashTime
    }
    switch ($policy) {
        0 {
            if (-not $fresh) {
                Write-Result FAIL "Passthrough: no $dumpFile written after the crash."
                $failures++
            } elseif (Test-DumpHeader $dumpFile) {
                Write-Result PASS ("Passthrough: $dumpFile ({0:N0} bytes) has a valid header ('PAGE' 'DU64')." -f $item.Length)
            } else {
                Write-Result FAIL "Passthrough: $dumpFile does not start with 'PAGE' 'DU64': the dump is corrupt."
                $failures++
            }
        }
        1 {
            if ($fresh -and (Test-DumpHeader $dumpFile)) {
                Write-Result WARN ("Encrypt: $dumpFile has a plaintext header. Expected only when a disk-encryption product " +
                    'decrypts the dump on the way back or the encrypted area does not cover the header; otherwise the filter did not encrypt.')
            } else {
                Write-Result PASS 'Encrypt: Windows found no readable dump, as expected when the dump reached the disk as ciphertext.'
            }
            if ($state.DedicatedDumpFile) {
                Write-Result INFO ('The encrypted dump is in {0}, which lay at these clusters before the crash:' -f $state.DedicatedDumpFile)
                foreach ($line in @($state.Extents)) {
                    Write-Result INFO "  $line"
                }
                Write-Result INFO ('Its partition starts at byte {0} of the disk. From the disk image taken while the VM was off: ' -f $state.PartitionOffset +
                    '`dumpcrypt decrypt --key KEY --in disk.raw --partition-offset OFFSET --range START..END --out - >> dump.bin` per ' +
                    'extent (START = OFFSET + LCN x cluster size), then `dumpcrypt find-dump dump.bin --at 0 --extract MEMORY.DMP` (docs\recovery.md).')
            } else {
                Write-Result WARN 'No dedicated dump file was recorded before the crash: the dump may be lost (run -Phase Before again with encrypt set).'
            }
        }
        2 {
            if ($fresh) {
                Write-Result FAIL "Refuse: $dumpFile was written after the crash."
                $failures++
            } else {
                Write-Result PASS 'Refuse: no dump was written.'
            }
        }
        default {
            Write-Result FAIL "Invalid CrashDumpPolicy $policy was configured: the filter must have refused the dump (none written); configure a valid policy to test."
            $failures++
        }
    }

    $query = Invoke-Native 'verifier.exe' @('/query')
    $lines = @($query.Output | Where-Object { $_ -match 'dumpcrypt' })
    if ($query.ExitCode -ne 0) {
        Write-Result WARN ('verifier /query failed with exit code {0}: {1}' -f $query.ExitCode, ($query.Output -join ' '))
    } elseif ($lines.Count -gt 0) {
        Write-Result INFO ('verifier /query: {0}' -f ($lines -join ' | '))
    } else {
        Write-Result INFO 'verifier /query does not list dumpcrypt in this boot.'
    }

    if ($Cleanup) {
        $verifierState = Read-TestState 'verifier.json'
        if ($null -ne $verifierState -and $verifierState.EnabledByTest) {
            if ($PSCmdlet.ShouldProcess('Driver Verifier', 'Reset (it was off before the test)')) {
                $reset = Invoke-Native 'verifier.exe' @('/reset')
                # verifier returns 2 when the change takes effect at the next boot.
                if ($reset.ExitCode -eq 0 -or $reset.ExitCode -eq 2) {
                    Write-Result INFO 'Driver Verifier reset; takes effect at the next boot.'
                } else {
                    Write-Result FAIL ('verifier /reset failed with exit code {0}: {1}' -f $reset.ExitCode, ($reset.Output -join ' '))
                    $failures++
                }
            }
        } else {
            Write-Result INFO 'Driver Verifier was on before the test: left as it is.'
        }
        Restore-CrashControlBefore
    }

    if ($failures -gt 0) {
        Write-Result FAIL "$failures check(s) failed."
        exit 1
    }
    Write-Result PASS 'Crash test passed.'
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
