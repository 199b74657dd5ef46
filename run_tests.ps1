<#
.SYNOPSIS
    Set up .venv and run ocrpipe's tests on Windows.

.DESCRIPTION
    Finds Python 3.11 or newer (the py launcher first, then python on PATH), creates .venv in the
    repository folder when it is missing, installs ocrpipe with its test extras into it (again only
    when pyproject.toml changed since the last install), then runs pytest and exits with pytest's
    exit code.

    Without -Integration the integration tests are left out (-m "not integration").
    With -Integration every test runs; those tests need 7-Zip, Tesseract and Ghostscript, and the
    script warns first about any it cannot find.
    With -Bench it runs bench\benchmarks.py instead of the tests, when that file exists, and exits
    with the benchmark's exit code.

    Any other arguments go to pytest (with -Bench: to benchmarks.py).

.EXAMPLE
    .\run_tests.ps1
    Unit tests only.
.EXAMPLE
    .\run_tests.ps1 -Integration
    Every test, the integration tests with the real tools included.
.EXAMPLE
    .\run_tests.ps1 -k sevenzip -x
    Unit tests whose names contain "sevenzip"; stop at the first failure.
.EXAMPLE
    .\run_tests.ps1 -Bench --smoke
    The benchmark's quick run.
#>
param(
    [switch]$Integration,
    [switch]$Bench
)
# Not an advanced script on purpose: arguments it does not declare (pytest's -k, -x, --lf...) land in
# $args instead of being refused or taken for common parameters such as -Verbose.

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
# PowerShell 7.3+: a native command's non-zero exit (failing tests) is a result here, not a script error.
$PSNativeCommandUseErrorActionPreference = $false
# Around native commands the preference drops to 'Continue': Windows PowerShell 5.1 would otherwise stop
# the script at the first line pip or pytest writes to stderr whenever the output is redirected.

$PassThru = @($args)
$RepoRoot = $PSScriptRoot
$Venv = Join-Path $RepoRoot '.venv'
$VenvScripts = Join-Path $Venv 'Scripts'
$VenvPython = Join-Path $VenvScripts 'python.exe'
$Stamp = Join-Path $Venv '.ocrpipe-install-stamp'
$PyProject = Join-Path $RepoRoot 'pyproject.toml'
$BenchScript = Join-Path (Join-Path $RepoRoot 'bench') 'benchmarks.py'

function Get-PythonPath {
    # The full path of the interpreter that $Command starts when it is Python 3.11+, else $null.
    param([string[]]$Command)
    $exe = $Command[0]
    $pre = @($Command | Select-Object -Skip 1)
    if (-not (Get-Command $exe -CommandType Application -ErrorAction SilentlyContinue)) { return $null }
    # Windows PowerShell 5.1 turns a native program's stderr into errors under 'Stop': probe gently.
    $saved = $ErrorActionPreference
    $ErrorActionPreference = 'Continue'
    try {
        $out = & $exe @pre -c 'import sys; print(sys.executable if sys.version_info >= (3, 11) else str())' 2>$null
        if ($LASTEXITCODE -ne 0) { return $null }
    } catch {
        return $null
    } finally {
        $ErrorActionPreference = $saved
    }
    $path = "$out".Trim()
    if ($path -and (Test-Path -LiteralPath $path -PathType Leaf)) { return $path }
    return $null
}

function Find-Python {
    foreach ($candidate in @('py -3', 'py -3.13', 'py -3.12', 'py -3.11', 'python', 'python3')) {
        $path = Get-PythonPath -Command ($candidate -split ' ')
        if ($path) { return $path }
    }
    throw ('ocrpipe needs Python 3.11 or newer and none was found (tried the py launcher and python on PATH). ' +
           'Install it, e.g. "winget install --id Python.Python.3.12", then run this script again.')
}

function Find-Tool {
    # Where ocrpipe looks too: PATH first, then the installers' folders under Program Files.
    param([string[]]$Names, [string[]]$Globs)
    foreach ($name in $Names) {
        $found = Get-Command $name -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
        if ($found) { return $found.Path }
    }
    $roots = @('ProgramFiles', 'ProgramW6432', 'ProgramFiles(x86)' |
        ForEach-Object { [Environment]::GetEnvironmentVariable($_) } | Where-Object { $_ } | Select-Object -Unique)
    foreach ($root in $roots) {
        foreach ($glob in $Globs) {
            $hit = Get-ChildItem -Path (Join-Path $root $glob) -File -ErrorAction SilentlyContinue |
                Sort-Object -Property FullName -Descending | Select-Object -First 1
            if ($hit) { return $hit.FullName }
        }
    }
    return $null
}

function Test-Tools {
    # Warn (never stop) about the tools the integration tests and the benchmark run.
    $tools = @(
        @{ Name = '7-Zip'; Names = @('7z', '7za', '7zz'); Globs = @('7-Zip\7z.exe'); Winget = '7zip.7zip' },
        @{ Name = 'Tesseract'; Names = @('tesseract'); Globs = @('Tesseract-OCR\tesseract.exe'); Winget = 'UB-Mannheim.TesseractOCR' },
        @{ Name = 'Ghostscript'; Names = @('gswin64c', 'gswin32c', 'gs'); Globs = @('gs\gs*\bin\gswin64c.exe', 'gs\gs*\bin\gswin32c.exe'); Winget = 'ArtifexSoftware.GhostScript' },
        # Office documents (the CONVERT stage): its integration tests are skipped without LibreOffice.
        @{ Name = 'LibreOffice'; Names = @('soffice'); Globs = @('LibreOffice\program\soffice.exe'); Winget = 'TheDocumentFoundation.LibreOffice' }
    )
    $missing = 0
    foreach ($tool in $tools) {
        $path = Find-Tool -Names $tool.Names -Globs $tool.Globs
        if ($path) {
            Write-Host "run_tests: found $($tool.Name): $path"
        } else {
            Write-Warning "$($tool.Name) not found (PATH or Program Files). Install it: winget install --id $($tool.Winget)"
            $missing++
        }
        if ($path -and $tool.Name -eq 'Tesseract') {
            $saved = $ErrorActionPreference
            $ErrorActionPreference = 'Continue'
            try { $langs = @(& $path --list-langs 2>$null | ForEach-Object { "$_".Trim() }) } catch { $langs = @() }
            finally { $ErrorActionPreference = $saved }
            foreach ($lang in @('eng', 'fra', 'deu')) {  # deu: OCR_LANG=auto's tests read German too
                if ($langs -notcontains $lang) {
                    Write-Warning ("Tesseract has no '$lang' language data (OCR_LANG defaults to fra+eng; the OCR_LANG=auto tests read deu): " +
                                   "rerun the UB-Mannheim installer and tick it, or put $lang.traineddata in its tessdata folder.")
                    $missing++
                }
            }
        }
    }
    if ($missing -gt 0) { Write-Warning 'The integration tests will fail without these; open a new terminal after installing.' }
}

function Install-Venv {
    if (Test-Path -LiteralPath $VenvPython -PathType Leaf) {
        if (-not (Get-PythonPath -Command @($VenvPython))) {
            throw "$Venv does not run Python 3.11 or newer. Delete the .venv folder and run this script again."
        }
    } else {
        $python = Find-Python
        Write-Host "run_tests: creating .venv with $python"
        $ErrorActionPreference = 'Continue'  # (this function's scope) stderr output is not a failure
        & $python -m venv $Venv
        $rc = $LASTEXITCODE
        $ErrorActionPreference = 'Stop'
        if ($rc -ne 0) { throw "python -m venv failed (exit code $rc)" }
    }
    $want = (Get-FileHash -LiteralPath $PyProject -Algorithm SHA256).Hash.ToLowerInvariant() + ' [test]'
    $have = ''
    if (Test-Path -LiteralPath $Stamp -PathType Leaf) { $have = "$(Get-Content -LiteralPath $Stamp -Raw)".Trim() }
    if ($want -eq $have -and (Test-Path -LiteralPath (Join-Path $VenvScripts 'ocrpipe.exe') -PathType Leaf)) {
        Write-Host 'run_tests: .venv up to date (pyproject.toml unchanged since the last install)'
        return
    }
    Write-Host "run_tests: pip install -e .[test] into .venv"
    if (Test-Path -LiteralPath $Stamp) { Remove-Item -LiteralPath $Stamp -Force }
    $ErrorActionPreference = 'Continue'
    & $VenvPython -m pip install --quiet --disable-pip-version-check -e '.[test]'
    $rc = $LASTEXITCODE
    $ErrorActionPreference = 'Stop'
    if ($rc -ne 0) { throw "pip install failed (exit code $rc)" }
    Set-Content -LiteralPath $Stamp -Value $want -Encoding Ascii
}

$code = 1
Push-Location -LiteralPath $RepoRoot
try {
    Install-Venv
    if ($Bench) {
        if (-not (Test-Path -LiteralPath $BenchScript -PathType Leaf)) {
            Write-Warning 'bench\benchmarks.py does not exist yet: nothing to run.'
            $code = 0
        } else {
            Test-Tools
            Write-Host "run_tests: $VenvPython $BenchScript $($PassThru -join ' ')"
            $ErrorActionPreference = 'Continue'
            & $VenvPython $BenchScript @PassThru
            $code = $LASTEXITCODE
            $ErrorActionPreference = 'Stop'
        }
    } else {
        $pytestArgs = @('-m', 'pytest', '-q')
        if ($Integration) {
            Test-Tools
        } else {
            $pytestArgs += @('-m', 'not integration')
        }
        $pytestArgs += $PassThru
        Write-Host "run_tests: $VenvPython $($pytestArgs -join ' ')"
        $ErrorActionPreference = 'Continue'
        & $VenvPython @pytestArgs
        $code = $LASTEXITCODE
        $ErrorActionPreference = 'Stop'
    }
} finally {
    Pop-Location
}
exit $code
