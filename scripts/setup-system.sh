#!/usr/bin/env bash
# Installs the system packages kiln needs on Debian/Ubuntu when they are missing:
#   libvulkan1                       the Vulkan loader Dawn (npm `webgpu`) uses
#   mesa-vulkan-drivers (Mesa >= 24) lavapipe, the fast software adapter when there is no GPU
#                                    (on Debian 12 from bookworm-backports: bookworm's Mesa 22 is rejected by Dawn)
#   chromium                         headless browser tests, and SwiftShader's Vulkan ICD as a fallback adapter
# Idempotent and quiet when everything is present. As non-root it prints the exact commands instead.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
mesa_major() { dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | sed -E 's/^([0-9]+:)?([0-9]+).*/\2/'; }

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "kiln setup: not a Debian-based system; install a Vulkan loader and driver (or use a GPU) and Chromium yourself." >&2
  exit 0
fi

. /etc/os-release 2>/dev/null || true
codename="${VERSION_CODENAME:-}"

have_pkg libvulkan1 || need+=(libvulkan1)
mesa_ok=1
if ! have_pkg mesa-vulkan-drivers; then mesa_ok=0; elif [ "$(mesa_major)" -lt 24 ] 2>/dev/null; then mesa_ok=0; fi
if [ "${KILN_SKIP_BROWSER:-}" != 1 ] && ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  need+=(chromium)
fi

if [ ${#need[@]} -eq 0 ] && [ $mesa_ok -eq 1 ]; then exit 0; fi

backports=""
if [ "$codename" = bookworm ]; then backports="bookworm-backports"; fi

cmds=()
if [ $mesa_ok -eq 0 ] && [ -n "$backports" ]; then
  cmds+=("echo 'deb http://deb.debian.org/debian $backports main' > /etc/apt/sources.list.d/kiln-backports.list")
fi
cmds+=("apt-get update")
[ ${#need[@]} -gt 0 ] && cmds+=("DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${need[*]}")
if [ $mesa_ok -eq 0 ]; then
  if [ -n "$backports" ]; then
    cmds+=("DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -t $backports mesa-vulkan-drivers")
  else
    cmds+=("DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mesa-vulkan-drivers")
  fi
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "kiln setup: missing system packages. Run as root:" >&2
  for c in "${cmds[@]}"; do echo "  sudo sh -c \"$c\"" >&2; done
  echo "(continuing; kiln will use whatever WebGPU adapter it can find)" >&2
  exit 0
fi

echo "kiln setup: installing ${need[*]} $([ $mesa_ok -eq 0 ] && echo 'mesa-vulkan-drivers (>= 24)')" >&2
for c in "${cmds[@]}"; do
  echo "+ $c" >&2
  if [[ "$c" == apt-get\ update ]]; then apt-get update -qq >&2; else sh -c "$c" >&2; fi
done
