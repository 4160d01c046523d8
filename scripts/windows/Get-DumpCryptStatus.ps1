#Requires -Version 5.1
<#
.SYNOPSIS
    Shows whether dumpcrypt is registered, how it is configured, and whether the crash dump
    stack has loaded it.

.DESCRIPTION
    Reports, without changing anything:
      * registration: the DumpFilters entries, that dumpcrypt.sys is there exactly once, the
        image in System32\drivers (and its signature), the service entry, the driver package;
      * configuration: every Parameters value, the policies by name; the key never, only its
        length and a SHA-256 fingerprint prefix; whether the values pass the driver's rules,
        as `dumpcrypt.exe config --show` judges them (the driver's own parser; the script
        keeps no copy of the rules);
      * load state: whether dump_dumpcrypt.sys (the crash dump stack's copy) is loaded, from
        the kernel's module list (EnumDeviceDrivers); hiber_dumpcrypt.sys appears there only
        while a hibernation is in progress. dump_ copies are not services: driverquery and
        Win32_SystemDriver do not list them;
      * context: the crash dump type, test signing, Driver Verifier settings.

.PARAMETER AsObject
    Also emits the status as one object, for scripts.

.PARAMETER DumpCryptPath
    dumpcrypt.exe, which judges the configuration. Default: the one beside this script or one
    folder up, else the one on PATH.

.PARAMETER WhatIf
    Accepted for uniformity with the other scripts; this script changes nothing.

.EXAMPLE
    .\Get-DumpCryptStatus.ps1

.NOTES
    Exit code 0 when dumpcrypt is registered consistently (or cleanly absent), 1 when
    something is inconsistent (an entry without its file, a duplicate entry, an invalid
    configuration) or the status could not be read. Run elevated: the kernel module list
    needs it.
#>
[CmdletBinding(SupportsShouldProcess = $true, ConfirmImpact = 'Low')]
param(
    [switch]$AsObject,

    [string]$DumpCryptPath
)

$ErrorActionPreference = 'Stop'
. (Join-Path $PSScriptRoot 'DumpCryptCommon.ps1')

try {
    Assert-Administrator
    $problems = @()

    Write-Host 'Registration' -ForegroundColor Cyan
    $filters = Get-DumpFilters
    $count = Get-DumpCryptEntryCount $filters
    Write-Result INFO ('DumpFilters: {0}' -f ($(if ($filters.Count) { $filters -join ', ' } else { '(empty)' })))
    $image = Join-Path $env:windir 'System32\drivers\dumpcrypt.sys'
    $imagePresent = Test-Path -LiteralPath $image -PathType Leaf
    switch ($count) {
        0 { Write-Result INFO 'dumpcrypt.sys is not registered as a dump filter.' }
        1 { Write-Result PASS 'dumpcrypt.sys is registered as a dump filter.' }
        default {
            Write-Result FAIL "dumpcrypt.sys is listed $count times."
            $problems += 'duplicate DumpFilters entry'
        }
    }
    if ($imagePresent) {
        $signature = Get-AuthenticodeSignature -LiteralPath $image
        $version = (Get-Item -LiteralPath $image).VersionInfo.FileVersion
        Write-Result INFO ('{0}: version {1}, signature {2} ({3})' -f $image, $version, $signature.Status,
            $(if ($signature.SignerCertificate) { $signature.SignerCertificate.Subject } else { 'no signer' }))
    } elseif ($count -gt 0) {
        Write-Result FAIL "$image is missing but DumpFilters names it: the dump stack cannot load it and writes no dump."
        $problems += 'DumpFilters entry without its image'
    }
    if (Test-Path -LiteralPath $script:ServicePath) {
        $service = Get-ItemProperty -LiteralPath $script:ServicePath
        Write-Result INFO ('Service entry dumpcrypt: Type {0}, Start {1}, ImagePath {2}' -f $service.Type, $service.Start, $service.ImagePath)
    } else {
        Write-Result INFO 'No service entry dumpcrypt.'
    }
    $packages = Find-DumpCryptPackage
    Write-Result INFO ('Driver package: {0}' -f ($(if ($packages.Count) { $packages -join ', ' } else { 'none in the driver store' })))

    Write-Host 'Configuration' -ForegroundColor Cyan
    $config = Get-DumpCryptConfiguration
    if ($null -eq $config) {
        Write-Result INFO 'No Parameters key: passthrough for both stacks.'
    } else {
        foreach ($entry in $config.GetEnumerator()) {
            Write-Result INFO ('{0} = {1}' -f $entry.Key, $entry.Value)
        }
        $crash = Get-DwordParameter 'CrashDumpPolicy'
        $hiber = Get-DwordParameter 'HibernationPolicy'
        Write-Result INFO ('Crash dump: {0}; hibernation: {1}' -f (Get-PolicyName $crash), (Get-PolicyName $hiber))
        $exe = Find-DumpCryptExe -Path $DumpCryptPath
        if ($null -eq $exe) {
            Write-Result WARN ('dumpcrypt.exe was not found (beside this script, PATH): the configuration is not checked ' +
                'against the driver''s rules. Give -DumpCryptPath.')
        } else {
            $show = Invoke-Native $exe @('config', '--show')
            foreach ($line in $show.Output) {
                Write-Result INFO "  $line"
            }
            if ($show.ExitCode -eq 0) {
                Write-Result PASS 'The configuration passes the driver''s rules (dumpcrypt.exe config --show).'
            } elseif ($show.ExitCode -eq 1 -and (($show.Output -join "`n") -match 'INVALID: (.*)')) {
                Write-Result FAIL ('Invalid configuration: the filter will refuse every dump, and Windows will write none: {0}' -f $Matches[1])
                $problems += $Matches[1]
            } else {
                Write-Result FAIL ('dumpcrypt.exe config --show failed with exit code {0}: {1}' -f $show.ExitCode, ($show.Output -join ' '))
                $problems += 'configuration unreadable'
            }
        }
        if ((Get-DwordParameter 'KeySource') -eq 2) {
            $sealedPath = Join-Path $script:ParametersPath 'SealedKeys'
            $names = @()
            if (Test-Path -LiteralPath $sealedPath) {
                $names = @((Get-Item -LiteralPath $sealedPath).GetValueNames() |
                        Where-Object { $_ -match '^\d{8}T\d{6}\.\d{7}Z$' } | Sort-Object)
            }
            if ($names.Count -gt 0) {
                Write-Result PASS ('Sealed keys: {0}, the newest {1} (UTC load time); reg export the Parameters key and read them with dumpcrypt unseal --identity.' -f
                    $names.Count, $names[$names.Count - 1])
            } else {
                Write-Result WARN ('KeySource is sealed but Parameters\SealedKeys holds no sealed key: the crash dump stack has not ' +
                    'loaded dumpcrypt since it was configured (reboot), or could not write the key (then every dump is refused).')
            }
        }
        $acl = Get-Acl -LiteralPath $script:ParametersPath
        $readers = @($acl.Access | ForEach-Object { $_.IdentityReference.Value } | Sort-Object -Unique)
        Write-Result INFO ('Parameters ACL: {0}{1}' -f ($readers -join ', '), $(if ($acl.AreAccessRulesProtected) { ' (not inherited)' } else { ' (inherited)' }))
    }

    Write-Host 'Load state' -ForegroundColor Cyan
    $modules = Get-LoadedKernelModule
    $dumpCopy = @($modules | Where-Object { $_ -ieq 'dump_dumpcrypt.sys' }).Count -gt 0
    $hiberCopy = @($modules | Where-Object { $_ -ieq 'hiber_dumpcrypt.sys' }).Count -gt 0
    $plain = @($modules | Where-Object { $_ -ieq 'dumpcrypt.sys' }).Count -gt 0
    $otherDumpDrivers = @($modules | Where-Object { $_ -like 'dump_*' })
    Write-Result INFO ('Crash dump stack drivers loaded: {0}' -f ($(if ($otherDumpDrivers.Count) { $otherDumpDrivers -join ', ' } else { 'none' })))
    if ($dumpCopy) {
        Write-Result PASS 'dump_dumpcrypt.sys is loaded: the crash dump stack will filter through dumpcrypt.'
    } elseif ($count -gt 0) {
        Write-Result WARN ('dump_dumpcrypt.sys is not loaded. After a reboot it should be; if it still is not, ' +
            'DriverEntry failed (check the configuration and the System log, source volmgr) and no dump will be written.')
    }
    if ($hiberCopy) {
        Write-Result INFO 'hiber_dumpcrypt.sys is loaded (a hibernation is in progress or was just resumed).'
    }
    if ($plain) {
        Write-Result WARN 'dumpcrypt.sys is loaded as an ordinary driver; it should never be started as a service.'
    }

    Write-Host 'Context' -ForegroundColor Cyan
    $crashControl = Get-ItemProperty -LiteralPath $script:CrashControlPath
    $dumpTypes = @{ 0 = 'none'; 1 = 'complete'; 2 = 'kernel'; 3 = 'small'; 7 = 'automatic' }
    $dumpType = $crashControl.CrashDumpEnabled
    Write-Result INFO ('CrashDumpEnabled = {0} ({1}), DumpFile = {2}' -f $dumpType, $dumpTypes[[int]$dumpType], $crashControl.DumpFile)
    Write-Result INFO ('Test signing in this boot: {0}' -f (Test-TestSigningActive))
    $memoryManagement = Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management'
    $verifyDrivers = $null
    if ($memoryManagement.PSObject.Properties.Name -contains 'VerifyDrivers') {
        $verifyDrivers = $memoryManagement.VerifyDrivers
    }
    Write-Result INFO ('Driver Verifier drivers: {0}' -f ($(if ($verifyDrivers) { $verifyDrivers } else { 'none' })))

    if ($AsObject) {
        New-Object PSObject -Property ([ordered]@{
                Registered       = ($count -eq 1)
                DumpFilters      = $filters
                ImagePresent     = $imagePresent
                DumpCopyLoaded   = $dumpCopy
                HiberCopyLoaded  = $hiberCopy
                Configuration    = $config
                Problems         = $problems
            })
    }
    if ($problems.Count -gt 0) {
        exit 1
    }
    exit 0
} catch {
    Write-Result FAIL $_.Exception.Message
    exit 1
}
