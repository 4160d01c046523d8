#Requires -Version 5.1
<#
.SYNOPSIS
    Installs the dumpcrypt driver package, checks that it registered as a dump filter, and
    optionally writes its configuration.

.DESCRIPTION
    Installs the package that `cargo make` produced (dumpcrypt.inf, dumpcrypt.sys,
    dumpcrypt.cat):
      * Windows 10 1903 and later: pnputil /add-driver dumpcrypt.inf /install, which for a
        primitive driver INF runs its [DefaultInstall.NT<arch>] section;
      * older systems: rundll32 setupapi.dll,InstallHinfSection DefaultInstall.NT<arch>.
    Then checks that HKLM\SYSTEM\CurrentControlSet\Control\CrashControl\DumpFilters holds
    dumpcrypt.sys exactly once and still holds every entry it held before, in the same
    order (restoring them if the install lost any), that dumpcrypt.sys is in
    System32\drivers and that the service entry exists.

    With any configuration parameter, writes the configuration into
    HKLM\SYSTEM\CurrentControlSet\Services\dumpcrypt\Parameters and restricts that key to
    SYSTEM and Administrators. Values not given are left as they are (-Replace: set back to
    their defaults). The configuration is checked before anything is installed or written,
    by `dumpcrypt.exe config` (shipped in the package), which validates it with the driver's
    own parser: with an invalid configuration the filter refuses every dump, so Windows
    writes no crash dump at all. The script keeps no copy of those rules. When the
    configuration refuses hibernation (as a sealed key requires), hibernation is turned off
    with powercfg /h off.

    Running it again is safe: the INF appends dumpcrypt.sys only when it is missing.
    The filter takes effect after a reboot (the crash dump stack loads its filters at boot).

.PARAMETER PackagePath
    The folder holding dumpcrypt.inf, dumpcrypt.sys and dumpcrypt.cat
    (target\<profile>\dumpcrypt_package on the build machine).

.PARAMETER ImportTestCertificate
    Imports WDRLocalTestCert.cer from the package folder into the local machine's Trusted
    Root and Trusted Publishers stores, so that a test-signed package installs without a
    prompt. Only for test machines.

.PARAMETER CrashDumpPolicy
    Passthrough, Encrypt or Refuse, for the crash dump stack.

.PARAMETER HibernationPolicy
    Passthrough, Encrypt or Refuse, for the hibernation stack. Encrypt only works with a
    pre-boot component that decrypts what the boot loader reads; without one, resume fails
    and Windows boots fresh.

.PARAMETER KeyFile
    A file of exactly 64 bytes: the XTS-AES-256 data key followed by the tweak key (the
    halves must differ). `dumpcrypt keygen` makes one. Required when a policy is Encrypt,
    the key source is Registry and no key is configured yet. For tests and labs only: a key
    in the registry rests on the disk it protects. dumpcrypt.exe reads it; the script never
    does.

.PARAMETER KeySource
    Registry (the KeyFile), Provider (a volume-encryption driver through the provider
    interface) or Sealed (a fresh key at each load, sealed to -Recipient and kept only in
    Parameters\SealedKeys): the spelling of `dumpcrypt config --key-source`.

.PARAMETER Recipient
    With -KeySource Sealed: the administrator's age X25519 recipient (age1...), as
    `age-keygen -y IDENTITY` prints it. Public; the identity must never be on this machine.

.PARAMETER AllowPlaintextHibernation
    Accept hibernation passthrough while crash dumps are encrypted with a key held in memory
    (Registry or Sealed): every hibernation, Fast Startup included, then writes the key
    schedule and the Parameters key to hiberfil.sys in plaintext. Without it, such a
    configuration is refused.

.PARAMETER DataUnitSize
    512 or 4096 bytes.

.PARAMETER EncryptedAreaStart
    Start of the encrypted byte range (inclusive), in tweak-base coordinates.

.PARAMETER EncryptedAreaEnd
    End of the encrypted byte range (exclusive). Give both bounds or neither.

.PARAMETER TweakBase
    Partition (partition-relative, TweakBase 0) or Disk (disk-absolute, TweakBase 1): the
    spelling of `dumpcrypt config --tweak-base`.

.PARAMETER Replace
    Configuration values not given go back to their defaults instead of keeping their
    current values (use it to replace a configuration the driver would refuse).

.PARAMETER DumpCryptPath
    dumpcrypt.exe, which checks and writes the configuration. Default: the package folder's,
    else the one beside this script or one folder up, else the one on PATH.

.EXAMPLE
    .\Install-DumpCrypt.ps1 -PackagePath C:\dumpcrypt_package -ImportTestCertificate

.EXAMPLE
    .\Install-DumpCrypt.ps1 -PackagePath C:\dumpcrypt_package -CrashDumpPolicy Encrypt -KeyFile C:\keys\dump.key

.EXAMPLE
    .\Install-DumpCrypt.ps1 -PackagePath C:\dumpcrypt_package -CrashDumpPolicy Encrypt -KeySource Sealed -Recipient age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj

    Crash dumps encrypted under a fresh key per load, sealed to the administrator's age
    recipient; hibernation is refused, so the script turns it off (powercfg /h off).

.EXAMPLE
    .\Install-DumpCrypt.ps1 -PackagePath C:\dumpcrypt_package -WhatIf

.NOTES
    Exit code 0 on success, 1 on failure. Needs an elevated, 64-bit PowerShell. It asks for
    no confirmation (ConfirmImpact Medium); -Confirm asks before each change, and
    -Confirm:$false keeps a session whose $ConfirmPreference is Medium or lower unattended.
#>
[CmdletBinding(SupportsShouldProcess = $true, ConfirmImpact = 'Medium')]
param(
    [Parameter(Mandatory = $true)]
    [string]$PackagePath,

    [switch]$ImportTestCertificate,

    [ValidateSet('Passthrough', 'Encrypt', 'Refuse')]
    [string]$CrashDumpPolicy,

    [ValidateSet('Passthrough', 'Encrypt', 'Refuse')]
    [string]$HibernationPolicy,

    [string]$KeyFile,

    [ValidateSet('Registry', 'Provider', 'Sealed')]
    [string]$KeySource,

    [string]$Recipient,

    [switch]$AllowPlaintextHibernation,

    [ValidateSet(512, 4096)]
    [int]$DataUnitSize,

    [Nullable[UInt64]]$EncryptedAreaStart,

    [Nullable[UInt64]]$EncryptedAreaEnd,

    [ValidateSet('Partition', 'Disk')]
    [string]$TweakBase,

    [switch]$Replace,

    [string]$DumpCryptPath
)

$ErrorActionPreference = 'Stop'
. (Join-Path $PSScriptRoot 'DumpCryptCommon.ps1')

function Get-InfArchitecture {
    if (-not [Environment]::Is64BitOperatingSystem) {
        throw 'dumpcrypt supports 64-bit Windows only (amd64, arm64).'
    }
    if (-not [Environment]::Is64BitProcess) {
        throw 'Run this from 64-bit PowerShell: 32-bit PowerShell sees redirected System32 and registry views.'
    }
    switch ($env:PROCESSOR_ARCHITECTURE) {
        'AMD64' { return 'amd64' }
        'ARM64' { return 'arm64' }
        default { throw "Unsupported processor architecture $env:PROCESSOR_ARCHITECTURE." }
    }
}

function Test-ConfigurationRequested {
    # The script's parameters (a function's own $PSBoundParameters would be empty here).
    return [bool]($CrashDumpPolicy -or $HibernationPolicy -or $KeyFile -or $KeySource -or
        $Recipient -or $AllowPlaintextHibernation -or $DataUnitSize -or
        ($null -ne $EncryptedAreaStart) -or ($null -ne $EncryptedAreaEnd) -or $TweakBase -or $Replace)
}

function Get-ConfigArguments {
    <# The arguments of `dumpcrypt.exe config` for the values given (all of them with -Replace). #>
    $arguments = @('config')
    if (-not $Replace) {
        $arguments += '--update'
    }
    if (($null -eq $EncryptedAreaStart) -ne ($null -eq $EncryptedAreaEnd)) {
        throw 'Give both -EncryptedAreaStart and -EncryptedAreaEnd, or neither.'
    }
    if ($CrashDumpPolicy) {
        $arguments += @('--crash-policy', $CrashDumpPolicy.ToLowerInvariant())
    }
    if ($HibernationPolicy) {
        $arguments += @('--hibernation-policy', $HibernationPolicy.ToLowerInvariant())
    }
    if ($KeyFile) {
        $arguments += @('--key', $KeyFile)
    }
    if ($KeySource) {
        $arguments += @('--key-source', $KeySource.ToLowerInvariant())
    }
    if ($Recipient) {
        $arguments += @('--recipient', $Recipient)
    }
    if ($AllowPlaintextHibernation) {
        $arguments += '--allow-plaintext-hibernation'
    }
    if ($DataUnitSize) {
        $arguments += @('--data-unit', [string]$DataUnitSize)
    }
    if ($null -ne $EncryptedAreaStart) {
        $arguments += @('--area', ('{0}..{1}' -f $EncryptedAreaStart, $EncryptedAreaEnd))
    }
    if ($TweakBase) {
        $arguments += @('--tweak-base', $TweakBase.ToLowerInvariant())
    }
    return ,$arguments
}

function Invoke-DumpCryptConfig {
    <# Runs dumpcrypt.exe config; shows its lines; throws with them when it refuses. #>
    param([string]$Exe, [string[]]$Arguments, [string]$What)
    $result = Invoke-Native $Exe $Arguments
    foreach ($line in $result.Output) {
        Write-Result INFO "  $line"
    }
    if ($result.ExitCode -ne 0) {
        throw ("dumpcrypt.exe config refused the configuration ({0}, exit code {1}); nothing was {2}." -f
            ($result.Output -join ' '), $result.ExitCode, $What)
    }
}

function Set-ParametersSecurity {
    <# Parameters (and its subkeys): full control for SYSTEM and Administrators only, no inheritance. #>
    $security = New-Object System.Security.AccessControl.RegistrySecurity
    $security.SetAccessRuleProtection($true, $false)
    foreach ($sid in 'S-1-5-18', 'S-1-5-32-544') {
        $identity = New-Object System.Security.Principal.SecurityIdentifier($sid)
        $rule = New-Object System.Security.AccessControl.RegistryAccessRule(
            $identity,
            [System.Security.AccessControl.RegistryRights]::FullControl,
            [System.Security.AccessControl.InheritanceFlags]::ContainerInherit,
            [System.Security.AccessControl.PropagationFlags]::None,
            [System.Security.AccessControl.AccessControlType]::Allow)
        $security.AddAccessRule($rule)
    }
    Set-Acl -LiteralPath $script:ParametersPath -AclObject $security
    $check = Get-Acl -LiteralPath $script:ParametersPath
    $others = @($check.Access | Where-Object {
            $sid = $_.IdentityReference.Translate([System.Security.Principal.SecurityIdentifier]).Value
            ($sid -ne 'S-1-5-18') -and ($sid -ne 'S-1-5-32-544')
        })
    if (-not $check.AreAccessRulesProtected -or $others.Count -ne 0) {
        throw 'The Parameters key is still readable by others than SYSTEM and Administrators.'
    }
}

function Disable-RefusedHibernation {
    <# With HibernationPolicy refuse, turns hibernation off, and says why. #>
    if ((Get-DwordParameter 'HibernationPolicy') -ne 2) {
        return
    }
    Write-Result INFO ('HibernationPolicy is refuse: a refused hibernation shows as a black screen and a ' +
        'fresh logon (also at every Fast Startup shutdown), so hibernation and Fast Startup are turned off.')
    if ($PSCmdlet.ShouldProcess('powercfg', 'Turn hibernation off (powercfg /h off)')) {
        $result = Invoke-Native 'powercfg.exe' @('/h', 'off')
        if ($result.ExitCode -ne 0) {
            throw ("powercfg /h off failed with exit code {0}: {1}. Turn hibernation off by hand." -f
                $result.ExitCode, ($result.Output -join ' '))
        }
        Write-Result PASS 'Hibernation is off (powercfg /h off).'
    }
}

function Install-Package {
    param([string]$InfPath, [string]$Architecture)
    $build = [Environment]::OSVersion.Version.Build
    if ($build -ge 18362) {
        $result = Invoke-Native 'pnputil.exe' @('/add-driver', $InfPath, '/install')
        $result.Output | ForEach-Object { Write-Verbose $_ }
        if ($result.ExitCode -eq 3010) {
            Write-Result INFO 'pnputil: installed, a reboot is required.'
        } elseif ($result.ExitCode -ne 0) {
            throw ("pnputil /add-driver failed with exit code {0}:`n{1}" -f $result.ExitCode, ($result.Output -join "`n"))
        }
    } else {
        # Before 1903 Windows has no primitive drivers: run the section the old way.
        # 128 = the INF's folder is the source path, never reboot (this script says when to).
        $rundll = Join-Path $env:windir 'System32\rundll32.exe'
        $section = "DefaultInstall.NT$Architecture"
        $process = Start-Process -FilePath $rundll -ArgumentList @('setupapi.dll,InstallHinfSection', $section, '128', "`"$InfPath`"") -Wait -PassThru
        if ($process.ExitCode -ne 0) {
            throw "InstallHinfSection $section failed with exit code $($process.ExitCode)."
        }
    }
}

try {
    Assert-Administrator
    $architecture = Get-InfArchitecture

    if (-not (Test-Path -LiteralPath $PackagePath -PathType Container)) {
        throw "Package folder '$PackagePath' does not exist."
    }
    $package = (Resolve-Path -LiteralPath $PackagePath).ProviderPath
    foreach ($name in 'dumpcrypt.inf', 'dumpcrypt.sys', 'dumpcrypt.cat') {
        if (-not (Test-Path -LiteralPath (Join-Path $package $name) -PathType Leaf)) {
            throw "The package folder '$package' has no ${name}: build it with ``cargo make`` (see docs\windows.md)."
        }
    }
    $infPath = Join-Path $package 'dumpcrypt.inf'

    $configArguments = $null
    $exe = $null
    if (Test-ConfigurationRequested) {
        $exe = Find-DumpCryptExe -Path $DumpCryptPath -PackagePath $package
        if ($null -eq $exe) {
            throw ('dumpcrypt.exe was not found (package folder, beside this script, PATH): it checks the ' +
                'configuration with the driver''s rules. Give -DumpCryptPath, or build it (docs\windows.md).')
        }
        $configArguments = Get-ConfigArguments
        # Checked before anything is installed: without --apply, config only validates.
        Write-Result INFO "Checking the configuration with $exe :"
        Invoke-DumpCryptConfig -Exe $exe -Arguments $configArguments -What 'installed or written'
    }

    if ($ImportTestCertificate) {
        $certificate = Join-Path $package 'WDRLocalTestCert.cer'
        if (-not (Test-Path -LiteralPath $certificate -PathType Leaf)) {
            throw "No WDRLocalTestCert.cer in '$package'."
        }
        foreach ($store in 'Cert:\LocalMachine\Root', 'Cert:\LocalMachine\TrustedPublisher') {
            if ($PSCmdlet.ShouldProcess($store, "Import test certificate $certificate")) {
                Import-Certificate -FilePath $certificate -CertStoreLocation $store | Out-Null
            }
        }
    }

    $before = Get-DumpFilters
    $othersBefore = Get-OtherDumpFilters $before
    Write-Result INFO ('DumpFilters before: {0}' -f ($(if ($before.Count) { $before -join ', ' } else { '(empty)' })))

    if ($PSCmdlet.ShouldProcess($infPath, 'Install driver package')) {
        Install-Package -InfPath $infPath -Architecture $architecture

        $after = Get-DumpFilters
        $othersAfter = Get-OtherDumpFilters $after
        if (-not (Test-SameEntries $othersBefore $othersAfter)) {
            # Never leave the system without the filters it had (BitLocker's dumpfve.sys).
            Set-DumpFilters (@($othersBefore) + $script:DriverFile)
            throw ('The install changed the other DumpFilters entries (before: {0}; after: {1}). They were restored; report this.' -f
                ($othersBefore -join ', '), ($othersAfter -join ', '))
        }
        $count = Get-DumpCryptEntryCount $after
        if ($count -eq 0) {
            throw 'The install did not add dumpcrypt.sys to CrashControl\DumpFilters.'
        }
        if ($count -gt 1) {
            Write-Result WARN "dumpcrypt.sys was listed $count times in DumpFilters; keeping one."
            Set-DumpFilters (@($othersBefore) + $script:DriverFile)
        }
        Write-Result PASS ('DumpFilters: {0}' -f ((Get-DumpFilters) -join ', '))

        $image = Join-Path $env:windir 'System32\drivers\dumpcrypt.sys'
        if (-not (Test-Path -LiteralPath $image -PathType Leaf)) {
            throw "$image is missing after the install."
        }
        Write-Result PASS "$image is in place."
        if (-not (Test-Path -LiteralPath $script:ServicePath)) {
            throw 'The service entry HKLM\SYSTEM\CurrentControlSet\Services\dumpcrypt is missing after the install.'
        }
        Write-Result PASS ('Service entry dumpcrypt (Start = {0}).' -f (Get-ItemProperty -LiteralPath $script:ServicePath).Start)
        $published = Find-DumpCryptPackage
        if ($published.Count -gt 0) {
            Write-Result INFO ('Driver package: {0}' -f ($published -join ', '))
        }
    }

    if (Test-ConfigurationRequested) {
        if ($PSCmdlet.ShouldProcess($script:ParametersPath, 'Write dumpcrypt configuration')) {
            if (-not (Test-Path -LiteralPath $script:ParametersPath)) {
                New-Item -Path $script:ParametersPath -Force | Out-Null
            }
            Set-ParametersSecurity
            Invoke-DumpCryptConfig -Exe $exe -Arguments ($configArguments + '--apply') -What 'written'
            Write-Result PASS 'Configuration written (Parameters readable by SYSTEM and Administrators only).'
            Disable-RefusedHibernation
        }
    }

    Write-Result INFO 'Reboot to load the filter: the crash dump stack loads its filters at boot.'
    exit 0
} catch {
    Write-Result FAIL $_.Exception.Message
    exit 1
}
