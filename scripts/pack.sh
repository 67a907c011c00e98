#!/usr/bin/env bash
# Builds every SlowFast.NET package (the libraries, with symbols, and the `slowfast` .NET tool) into one folder.
# Usage: scripts/pack.sh [--out DIR] [--version X.Y.Z[-suffix]] [--no-build]
#   --out DIR      where the .nupkg/.snupkg files go (default: artifacts/packages)
#   --version V    the version of every package (default: VersionPrefix in Directory.Build.props)
#   --no-build     pack what `dotnet build -c Release` already built (the version then only names the packages)
# Install the tool from the folder:  dotnet tool install -g SlowFast.Cli --add-source artifacts/packages
set -euo pipefail
cd "$(dirname "$0")/.."
out=artifacts/packages
version=
build=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --no-build) build=(--no-build); shift ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "pack.sh: unknown argument '$1' (see scripts/pack.sh --help)" >&2; exit 2 ;;
  esac
done
command -v dotnet >/dev/null || { echo "pack.sh: the .NET 10 SDK is required (dotnet not found)" >&2; exit 1; }
props=()
[ -n "$version" ] && props+=("-p:Version=$version")
mkdir -p "$out"
dotnet pack SlowFast.sln -c Release -nologo -v q -clp:ErrorsOnly -o "$out" \
  -p:ContinuousIntegrationBuild=true "${props[@]}" "${build[@]}"
echo "packages in $out:"
ls -1 "$out" | sed 's/^/  /'
