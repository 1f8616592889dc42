#!/usr/bin/env bash
# Install test for gcheap, run by CTest as `install_consumer`.
#
#   1. cmake --install <build dir> --prefix <work dir>/prefix
#   2. configure, build (Ninja) and run tests/install/consumer/ against it
#      with find_package(gcheap CONFIG REQUIRED);
#   3. compile the same main.cpp with `$CXX -std=c++20 main.cpp $(pkg-config
#      --cflags --libs [--static] gcheap)` using PKG_CONFIG_PATH=<prefix>/<libdir>/pkgconfig,
#      and run it.
#
# Usage: run.sh --build-dir DIR [--work-dir DIR] [--cxx COMPILER] [--cmake CMAKE]
#               [--build-type TYPE] [--libdir lib] [--static-lib 0|1] [--werror 0|1]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build_dir=""
work_dir=""
cxx=${CXX:-c++}
cmake_bin=cmake
build_type=Release
libdir=lib
werror=0
static_lib=""

while (($#)); do
    case $1 in
        --build-dir) build_dir=$2; shift 2 ;;
        --work-dir) work_dir=$2; shift 2 ;;
        --cxx) cxx=$2; shift 2 ;;
        --cmake) cmake_bin=$2; shift 2 ;;
        --build-type) build_type=$2; shift 2 ;;
        --libdir) libdir=$2; shift 2 ;;
        --werror) werror=$2; shift 2 ;;
        --static-lib) static_lib=$2; shift 2 ;;
        *) echo "run.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
if [[ -z $build_dir ]]; then
    echo "run.sh: --build-dir is required" >&2
    exit 2
fi
build_dir=$(cd "$build_dir" && pwd)
work_dir=${work_dir:-$build_dir/install_consumer}

prefix=$work_dir/prefix
if [[ $libdir == /* ]]; then
    pc_dir=$libdir/pkgconfig
    lib_path=$libdir
else
    pc_dir=$prefix/$libdir/pkgconfig
    lib_path=$prefix/$libdir
fi

warn_flags=(-Wall -Wextra)
if [[ $werror == 1 || $werror == ON || $werror == TRUE ]]; then
    warn_flags+=(-Werror)
fi

step() { printf '\n==> %s\n' "$*"; }

rm -rf "$work_dir"
mkdir -p "$work_dir"

step "install $build_dir into $prefix"
"$cmake_bin" --install "$build_dir" --prefix "$prefix"

step "CMake consumer (find_package(gcheap CONFIG REQUIRED)) with $cxx"
"$cmake_bin" -S "$here/consumer" -B "$work_dir/cmake-build" -G Ninja \
    -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_BUILD_TYPE="$build_type" \
    -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_FIND_PACKAGE_PREFER_CONFIG=ON \
    -DCMAKE_CXX_FLAGS="${warn_flags[*]}"
"$cmake_bin" --build "$work_dir/cmake-build" -j2
step "run CMake consumer"
"$work_dir/cmake-build/app"

step "pkg-config consumer with $cxx"
export PKG_CONFIG_PATH=$pc_dir
# A static libgcheap needs its private dependencies (fmt, -pthread) at link time.
pc_args=(--cflags --libs)
if [[ -z $static_lib ]]; then
    if [[ -e $lib_path/libgcheap.so ]]; then static_lib=0; else static_lib=1; fi
fi
if [[ $static_lib == 1 ]]; then
    pc_args+=(--static)
fi
pc_flags=$(pkg-config "${pc_args[@]}" gcheap)
echo "pkg-config ${pc_args[*]} gcheap: $pc_flags"
# Word splitting of the pkg-config output is intended, as in $(pkg-config ...).
read -r -a pc_words <<< "$pc_flags"
(
    set -x
    "$cxx" -std=c++20 "${warn_flags[@]}" "$here/consumer/main.cpp" -o "$work_dir/app-pkgconfig" "${pc_words[@]}"
)
step "run pkg-config consumer"
LD_LIBRARY_PATH=$lib_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$work_dir/app-pkgconfig"

step "install_consumer: OK"
