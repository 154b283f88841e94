#!/usr/bin/env bash
# `cmake --install` into a temporary prefix, then the README's C program built against that
# prefix three ways (pkg-config shared, pkg-config with libcoffer.a, CMake find_package) and run;
# then `cpack -G DEB` and the package's file list.
# usage: test_install.sh BUILD_DIR SOURCE_DIR [SANITIZER_FLAGS]
set -u
build=${1:?usage: test_install.sh BUILD_DIR SOURCE_DIR [SANITIZER_FLAGS]}
src=${2:?}
san=${3:-} # a sanitized build's libraries need the same runtime in the program
pass=0 fail=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

t=$(mktemp -d /tmp/coffer-install.XXXXXX)
trap 'rm -rf "$t"' EXIT
p=$t/prefix
if ! cmake --install "$build" --prefix "$p" >"$t/install.log" 2>&1; then
	cat "$t/install.log"
	echo "0 passed, 1 failed"
	exit 1
fi

# What is installed.
for f in bin/coffer lib/libcoffer.so.0.1.0 lib/libcoffer.a include/coffer.h lib/pkgconfig/coffer.pc \
	lib/cmake/coffer/coffer-config.cmake lib/cmake/coffer/coffer-config-version.cmake \
	lib/cmake/coffer/coffer-targets.cmake lib/systemd/system/coffer.service; do
	check "installed $f" test -f "$p/$f"
done
check "libcoffer.so.0 -> libcoffer.so.0.1.0" test "$(readlink "$p/lib/libcoffer.so.0")" = libcoffer.so.0.1.0
check "libcoffer.so -> libcoffer.so.0" test "$(readlink "$p/lib/libcoffer.so")" = libcoffer.so.0
check "SONAME libcoffer.so.0" grep -q 'SONAME.*\[libcoffer.so.0\]' <(readelf -d "$p/lib/libcoffer.so.0.1.0")
if command -v scdoc >/dev/null; then
	for m in man1/coffer.1 man1/coffer-serve.1 man3/libcoffer.3; do
		check "man page $m" grep -q '^\.TH' "$p/share/man/$m"
	done
else
	echo "skip: scdoc is not installed, so no man pages were generated (scripts/deps.sh installs it)"
fi

# The README's program: the first ```c block after "## The same with the C API".
awk '/^## The same with the C API/ {s = 1} s && /^```c$/ {c = 1; next} c && /^```$/ {exit} c {print}' \
	"$src/README.md" >"$t/app.c"
check "README has a C program" grep -q 'int main(void)' "$t/app.c"

export PKG_CONFIG_PATH=$p/lib/pkgconfig
cflags="-std=c11 -Wall -Wextra -Wpedantic -Werror $san"
version=$(sed -n 's/^#define COFFER_VERSION_STRING "\(.*\)"$/\1/p' "$src/include/coffer.h")
check "pkg-config --modversion coffer = $version" test "$(pkg-config --modversion coffer)" = "$version"

# Run a built program in a fresh folder (its store is ./.coffer there) and check what it printed.
run_app() { # name binary [LD_LIBRARY_PATH]
	local d=$t/run-$1
	mkdir -p "$d"
	local out
	if ! out=$(cd "$d" && env -u COFFER_MASTER_KEY -u COFFER_PASSPHRASE -u COFFER_KEY_FILE \
		-u COFFER_STORE LD_LIBRARY_PATH="${3:-}" "$2" 2>&1); then
		echo "$out"
		return 1
	fi
	echo "$out" | sed 's/^/    /'
	[ "$out" = "libcoffer $version
crummy_goofed_caddy_radiant is version 2" ]
}

# 1. pkg-config, shared.
# shellcheck disable=SC2046,SC2086
if cc $cflags "$t/app.c" -o "$t/app-shared" $(pkg-config --cflags --libs coffer) 2>"$t/cc1.log" &&
	[ ! -s "$t/cc1.log" ]; then
	ok "pkg-config shared: compiles without a warning"
	check "pkg-config shared: needs libcoffer.so.0" grep -q 'NEEDED.*\[libcoffer.so.0\]' <(readelf -d "$t/app-shared")
	check "pkg-config shared: runs against the prefix's libcoffer.so.0" \
		grep -q "$p/lib/libcoffer.so.0" <(LD_LIBRARY_PATH=$p/lib ldd "$t/app-shared")
	check "pkg-config shared: the program's output" run_app shared "$t/app-shared" "$p/lib"
else
	cat "$t/cc1.log"
	bad "pkg-config shared: compiles without a warning"
fi

# 2. pkg-config --static: libcoffer.a in the program, its dependencies (Requires.private) shared.
# shellcheck disable=SC2046,SC2086
if cc $cflags "$t/app.c" -o "$t/app-static" $(pkg-config --cflags coffer) -Wl,--as-needed -Wl,-Bstatic \
	$(pkg-config --libs coffer) -Wl,-Bdynamic $(pkg-config --static --libs coffer) 2>"$t/cc2.log" &&
	[ ! -s "$t/cc2.log" ]; then
	ok "pkg-config --static: compiles and links without a warning"
	check "pkg-config --static: no libcoffer.so needed" bash -c "! readelf -d '$t/app-static' | grep -q libcoffer"
	check "pkg-config --static: the program's output" run_app static "$t/app-static"
else
	cat "$t/cc2.log"
	bad "pkg-config --static: compiles and links without a warning"
fi

# 3. CMake find_package(coffer) -> coffer::coffer.
mkdir -p "$t/cm"
cp "$t/app.c" "$t/cm/app.c"
cat >"$t/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(app C)
find_package(coffer 0.1 REQUIRED)
add_executable(app app.c)
target_link_libraries(app PRIVATE coffer::coffer)
CM
if cmake -S "$t/cm" -B "$t/cm/build" -DCMAKE_PREFIX_PATH="$p" -DCMAKE_C_FLAGS="$cflags" \
	-DCMAKE_EXE_LINKER_FLAGS="$san" >"$t/cm.log" 2>&1 && cmake --build "$t/cm/build" >>"$t/cm.log" 2>&1; then
	ok "find_package(coffer): builds"
	check "find_package(coffer): the program's output" run_app cmake "$t/cm/build/app"
else
	cat "$t/cm.log"
	bad "find_package(coffer): builds"
fi

# 4. cpack -G DEB: the package and its contents.
if command -v dpkg-deb >/dev/null; then
	if (cd "$build" && cpack -G DEB -B "$t/deb" >"$t/cpack.log" 2>&1); then
		deb=$(ls "$t"/deb/coffer_*.deb 2>/dev/null | head -1)
		check "cpack made a .deb" test -n "$deb"
		if [ -n "$deb" ]; then
			dpkg-deb -c "$deb" | awk '{print $6}' >"$t/deb.list"
			sed 's/^/    /' "$t/deb.list"
			for f in ./usr/bin/coffer ./usr/lib/libcoffer.so.0.1.0 ./usr/lib/libcoffer.so.0 ./usr/lib/libcoffer.so \
				./usr/lib/libcoffer.a ./usr/include/coffer.h ./usr/lib/pkgconfig/coffer.pc \
				./usr/lib/cmake/coffer/coffer-config.cmake ./usr/lib/systemd/system/coffer.service; do
				check ".deb holds $f" grep -qx "$f" "$t/deb.list"
			done
			if command -v scdoc >/dev/null; then
				check ".deb holds ./usr/share/man/man3/libcoffer.3" grep -qx ./usr/share/man/man3/libcoffer.3 "$t/deb.list"
			fi
			dpkg-deb -f "$deb" Package Version Depends | sed 's/^/    /'
			check ".deb depends on libsodium" grep -q libsodium <(dpkg-deb -f "$deb" Depends)
		fi
	else
		cat "$t/cpack.log"
		bad "cpack -G DEB"
	fi
else
	echo "skip: dpkg-deb is not installed, no .deb check"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
