# Installs a pinned PyPI tool into the tools cache, once; sourced by the
# scripts that use one (guests/python-wiki/build.sh: componentize-py;
# tests/oras/oras.sh: oras; deploy/k8s/validate.sh: kubernetes-validate).
#
#   . guests/pip-tool.sh
#   pip_tool SCRIPT PACKAGE VERSION MODULE WHAT   # sets $tools
#
# SCRIPT names the caller in messages, MODULE is the directory the package
# installs (its presence means "installed"), WHAT says what needs it. The
# cache is $PERCORE_TOOLS (default ~/.cache/percore-tools)/PACKAGE-VERSION.
pip_tool() {
    local script="$1" package="$2" version="$3" module="$4" what="$5"
    tools="${PERCORE_TOOLS:-$HOME/.cache/percore-tools}/$package-$version"
    if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
        echo "$script: $what needs python3 with pip (Debian: apt-get install python3-pip)" >&2
        exit 1
    fi
    if [ ! -d "$tools/$module" ]; then
        echo "$script: installing $package $version into $tools" >&2
        python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
            --target "$tools" "$package==$version" >&2
    fi
}
