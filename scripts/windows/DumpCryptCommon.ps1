#Requires -Version 5.1
<#
.SYNOPSIS
    Shared helpers of the dumpcrypt Windows scripts (dot-sourced, not run on its own).

.DESCRIPTION
    Names of the driver, its service and registry keys; reading and writing the DumpFilters
    value without losing other entries; finding the installed driver package and
    dumpcrypt.exe; listing the loaded kernel modules (dump_ and hiber_ copies included);
    running native tools so that their exit codes are always examined. Windows PowerShell
    5.1 compatible.
#>

Set-StrictMode -Version 2.0

$script:DriverFile = 'dumpcrypt.sys'
$script:ServiceName = 'dumpcrypt'
$script:CrashControlPath = 'HKLM:\SYSTEM\CurrentControlSet\Control\CrashControl'
$script:ServicePath = 'HKLM:\SYSTEM\CurrentControlSet\Services\dumpcrypt'
$script:ParametersPath = 'HKLM:\SYSTEM\CurrentControlSet\Services\dumpcrypt\Parameters'
$script:StatePath = Join-Path $env:ProgramData 'dumpcrypt-test'
# dumpcrypt's bug check code: 'DCRY' (the README lists its parameters).
$script:DumpCryptBugCheck = 0x44435259

function Assert-Administrator {
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = New-Object Security.Principal.WindowsPrincipal($identity)
    if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
        throw 'This script must run elevated: open PowerShell with "Run as administrator".'
    }
}

function Get-DumpFilters {
    <# The DumpFilters REG_MULTI_SZ as a string array (empty when the value is absent). #>
    $key = Get-Item -LiteralPath $script:CrashControlPath
    $value = $key.GetValue('DumpFilters', $null, 'DoNotExpandEnvironmentNames')
    if ($null -eq $value) {
        return ,@()
    }
    $kind = $key.GetValueKind('DumpFilters')
    if ($kind -ne [Microsoft.Win32.RegistryValueKind]::MultiString) {
        throw "CrashControl\DumpFilters is a $kind value, not REG_MULTI_SZ: fix it by hand before going on."
    }
    return ,@($value | Where-Object { $_ -ne '' })
}

function Set-DumpFilters {
    param([Parameter(Mandatory = $true)][AllowEmptyCollection()][string[]]$Entries)
    # An empty REG_MULTI_SZ is what Windows has without any filter; keep the value itself.
    Set-ItemProperty -LiteralPath $script:CrashControlPath -Name 'DumpFilters' -Value ([string[]]$Entries) -Type MultiString
}

function Get-DumpCryptEntryCount {
    param([string[]]$Entries)
    return @($Entries | Where-Object { $_ -ieq $script:DriverFile }).Count
}

function Get-OtherDumpFilters {
    <# The entries that are not dumpcrypt's, in their order. #>
    param([string[]]$Entries)
    return ,@($Entries | Where-Object { $_ -ine $script:DriverFile })
}

function Test-SameEntries {
    param([string[]]$Left, [string[]]$Right)
    $l = @($Left)
    $r = @($Right)
    if ($l.Count -ne $r.Count) {
        return $false
    }
    for ($i = 0; $i -lt $l.Count; $i++) {
        if ($l[$i] -ine $r[$i]) {
            return $false
        }
    }
    return $true
}

function Invoke-Native {
    <#
    .SYNOPSIS
        Runs a native program and returns its output lines and exit code; never throws on a
        non-zero exit code or on a line written to standard error (the caller decides).
    .DESCRIPTION
        The scripts run with $ErrorActionPreference = 'Stop'. Under it, Windows PowerShell 5.1
        turns the first line a native program writes to standard error, when redirected with
        2>&1, into a terminating error, before the exit code can be read. Here the preference
        is 'Continue' (local to this function), so every line is collected and the exit code
        (3010, verifier's, pnputil's) always reaches the caller. A program that cannot be
        found is an error.
    #>
    param(
        [Parameter(Mandatory = $true)][string]$FilePath,
        [string[]]$ArgumentList = @()
    )
    $command = Get-Command -Name $FilePath -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($null -eq $command) {
        throw "$FilePath was not found (not on PATH, and no such file)."
    }
    $ErrorActionPreference = 'Continue'
    # PowerShell 7.3+: a non-zero exit code must not become an error either.
    $PSNativeCommandUseErrorActionPreference = $false
    $output = & $command.Source @ArgumentList 2>&1 | ForEach-Object { "$_" }
    $exitCode = $LASTEXITCODE
    return New-Object PSObject -Property @{
        ExitCode = $exitCode
        Output   = @($output)
    }
}

function Find-DumpCryptExe {
    <#
    .SYNOPSIS
        The path of dumpcrypt.exe: the one given, else the package folder's, else the one
        beside these scripts or one folder up, else the one on PATH; $null when there is none.
    .DESCRIPTION
        The scripts check a configuration with `dumpcrypt.exe config`, the driver's own parser,
        instead of repeating its rules. The package built by the Windows workflow ships
        dumpcrypt.exe beside dumpcrypt.sys.
    #>
    param([string]$Path, [string]$PackagePath)
    if ($Path) {
        if (-not (Test-Path -LiteralPath $Path -PathType Leaf)) {
            throw "dumpcrypt.exe not found at '$Path'."
        }
        return (Resolve-Path -LiteralPath $Path).ProviderPath
    }
    $candidates = @()
    if ($PackagePath) {
        $candidates += (Join-Path $PackagePath 'dumpcrypt.exe')
    }
    $candidates += (Join-Path $PSScriptRoot 'dumpcrypt.exe')
    $candidates += (Join-Path (Split-Path -Parent $PSScriptRoot) 'dumpcrypt.exe')
    foreach ($candidate in $candidates) {
        if (Test-Path -LiteralPath $candidate -PathType Leaf) {
            return (Resolve-Path -LiteralPath $candidate).ProviderPath
        }
    }
    $onPath = Get-Command -Name 'dumpcrypt.exe' -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($null -ne $onPath) {
        return $onPath.Source
    }
    return $null
}

function Find-DumpCryptPackage {
    <#
    .SYNOPSIS
        The published names (oemNN.inf) of the installed dumpcrypt driver packages.
    .DESCRIPTION
        Windows keeps a copy of each installed third-party INF as %windir%\INF\oemNN.inf.
        Ours is the one whose [Version] names CatalogFile = dumpcrypt.cat and which installs
        dumpcrypt.sys. Reading the files does not depend on pnputil's localized output.
    #>
    $infDir = Join-Path $env:windir 'INF'
    $found = @()
    foreach ($file in Get-ChildItem -LiteralPath $infDir -Filter 'oem*.inf' -ErrorAction SilentlyContinue) {
        $text = Get-Content -LiteralPath $file.FullName -Raw -ErrorAction SilentlyContinue
        if ($null -eq $text) {
            continue
        }
        if ($text -match '(?im)^\s*CatalogFile\s*=\s*dumpcrypt\.cat\s*(;.*)?$' -and
            $text -match '(?im)^\s*ServiceBinary\s*=\s*%12%\\dumpcrypt\.sys') {
            $found += $file.Name
        }
    }
    return ,$found
}

function Get-LoadedKernelModule {
    <#
    .SYNOPSIS
        The base names of the loaded kernel modules, as EnumDeviceDrivers (psapi) reports them.
    .DESCRIPTION
        The crash dump stack loads its copies of the dump drivers under a "dump_" prefix
        (dump_dumpcrypt.sys) and the hibernation stack under "hiber_". They are not services,
        so driverquery and Win32_SystemDriver do not show them; the kernel's module list does.
    #>
    if (-not ('DumpCrypt.Psapi' -as [type])) {
        Add-Type -Namespace DumpCrypt -Name Psapi -MemberDefinition @'
[DllImport("psapi.dll", SetLastError = true)]
public static extern bool EnumDeviceDrivers([Out] System.IntPtr[] imageBases, uint bytes, out uint bytesNeeded);

[DllImport("psapi.dll", SetLastError = true, CharSet = CharSet.Unicode)]
public static extern uint GetDeviceDriverBaseNameW(System.IntPtr imageBase, System.Text.StringBuilder baseName, uint size);
'@
    }
    $needed = [uint32]0
    $bases = New-Object IntPtr[] 1024
    $pointerSize = [IntPtr]::Size
    for ($attempt = 0; $attempt -lt 4; $attempt++) {
        $bytes = [uint32]($bases.Length * $pointerSize)
        if (-not [DumpCrypt.Psapi]::EnumDeviceDrivers($bases, $bytes, [ref]$needed)) {
            throw ('EnumDeviceDrivers failed (Win32 error {0}).' -f [Runtime.InteropServices.Marshal]::GetLastWin32Error())
        }
        if ($needed -le $bytes) {
            break
        }
        $bases = New-Object IntPtr[] ([int]($needed / $pointerSize) + 64)
    }
    $count = [int]($needed / $pointerSize)
    $names = @()
    for ($i = 0; $i -lt $count; $i++) {
        $builder = New-Object System.Text.StringBuilder 260
        if ([DumpCrypt.Psapi]::GetDeviceDriverBaseNameW($bases[$i], $builder, 260) -gt 0) {
            $names += $builder.ToString()
        }
    }
    return ,$names
}

function Get-DumpCryptConfiguration {
    <#
    .SYNOPSIS
        The Parameters values as an ordered table; the key as a SHA-256 fingerprint, never itself.
    #>
    $config = [ordered]@{}
    if (-not (Test-Path -LiteralPath $script:ParametersPath)) {
        return $null
    }
    $key = Get-Item -LiteralPath $script:ParametersPath
    foreach ($name in $key.GetValueNames()) {
        $kind = $key.GetValueKind($name)
        $value = $key.GetValue($name, $null, 'DoNotExpandEnvironmentNames')
        if ($name -ieq 'Key') {
            $bytes = [byte[]]$value
            $sha = [Security.Cryptography.SHA256]::Create()
            try {
                $hash = $sha.ComputeHash($bytes)
            } finally {
                $sha.Dispose()
            }
            $hex = -join ($hash[0..7] | ForEach-Object { $_.ToString('x2') })
            $config[$name] = ('<{0} bytes, {1}, SHA-256 {2}...>' -f $bytes.Length, $kind, $hex)
        } else {
            $config[$name] = ('{0} ({1})' -f $value, $kind)
        }
    }
    return $config
}

function Get-PolicyName {
    param($Value)
    switch ($Value) {
        0 { return 'passthrough' }
        1 { return 'encrypt' }
        2 { return 'refuse' }
        $null { return 'passthrough (default)' }
        default { return "invalid ($Value): DriverEntry fails, no dump is written" }
    }
}

function Get-DwordParameter {
    param([string]$Name)
    if (-not (Test-Path -LiteralPath $script:ParametersPath)) {
        return $null
    }
    return (Get-Item -LiteralPath $script:ParametersPath).GetValue($Name, $null)
}

function Test-TestSigningActive {
    <# True when the running boot has test signing on (the boot options the loader used). #>
    $options = (Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control' -Name 'SystemStartOptions').SystemStartOptions
    return ($options -match '(^|\s)TESTSIGNING(\s|$)')
}

function Save-TestState {
    param([Parameter(Mandatory = $true)][string]$Name, [Parameter(Mandatory = $true)]$State)
    if (-not (Test-Path -LiteralPath $script:StatePath)) {
        New-Item -ItemType Directory -Path $script:StatePath -Force | Out-Null
    }
    $State | ConvertTo-Json -Depth 4 | Set-Content -LiteralPath (Join-Path $script:StatePath $Name) -Encoding ASCII
}

function Read-TestState {
    param([Parameter(Mandatory = $true)][string]$Name)
    $path = Join-Path $script:StatePath $Name
    if (-not (Test-Path -LiteralPath $path)) {
        return $null
    }
    return Get-Content -LiteralPath $path -Raw | ConvertFrom-Json
}

function Write-Result {
    <# One result line: PASS, FAIL, INFO or WARN, and what it is about. #>
    param([ValidateSet('PASS', 'FAIL', 'INFO', 'WARN')][string]$Status, [string]$Message)
    $color = @{ PASS = 'Green'; FAIL = 'Red'; INFO = 'Gray'; WARN = 'Yellow' }[$Status]
    Write-Host ('[{0}] {1}' -f $Status, $Message) -ForegroundColor $color
}
