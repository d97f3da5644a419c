"""The Buildroot BR2_EXTERNAL tree in board/: static checks, the board scripts run for real, and
Buildroot itself accepting our defconfigs and our package.

Buildroot is $BUILDROOT_DIR, else the source snapshot in ../shared/buildroot/ unpacked into a
temporary directory; the checks that need it fail, never skip, without one (make test installs
make and gcc for its kconfig).
"""
import ast
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib

import pytest

from webui import release, views_firmware

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOARD = os.path.join(TOP, "board")
DEFCONFIGS = sorted(name for name in os.listdir(os.path.join(BOARD, "configs"))
                    if name.endswith("_defconfig"))
FRAGMENTS = [os.path.join(BOARD, "kernel", name) for name in ("ikecore.fragment", "nanopi-r2s.fragment")]

# What the daemon and the image cannot do without (the fragment may hold more).
REQUIRED_KERNEL = ("NET", "INET", "IPV6", "XFRM", "XFRM_USER", "XFRM_STATISTICS", "INET_ESP",
                   "INET_AH", "CRYPTO_AES", "CRYPTO_DES", "CRYPTO_CBC", "CRYPTO_HMAC", "CRYPTO_MD5",
                   "CRYPTO_SHA1", "CRYPTO_SHA256", "CRYPTO_AUTHENC", "CRYPTO_ECHAINIV",
                   "CRYPTO_DRBG_MENU", "NF_TABLES", "NF_TABLES_INET", "NFT_LOG", "NFT_CT",
                   "VETH", "NET_NS", "VIRTIO_NET", "VIRTIO_BLK", "SQUASHFS", "EXT4_FS", "PACKET")
REQUIRED_PACKAGES = ("BR2_PACKAGE_PYTHON3", "BR2_PACKAGE_PYTHON_IKECORE", "BR2_PACKAGE_IPROUTE2",
                     "BR2_PACKAGE_NFTABLES")

FRAGMENT_LINE = re.compile(r'^CONFIG_[A-Z0-9_]+=(y|m|n|-?\d+|0x[0-9a-fA-F]+|"[^"]*")$')
NOT_SET_LINE = re.compile(r"^# CONFIG_[A-Z0-9_]+ is not set$")


def read(*parts):
    with open(os.path.join(BOARD, *parts)) as f:
        return f.read()


def fragment_options(path):
    """{name: value} of a kernel fragment; "n" for "# CONFIG_X is not set". Fails on bad lines."""
    options = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            where = "%s:%d" % (os.path.basename(path), number)
            if not line.strip() or (line.startswith("#") and not line.startswith("# CONFIG_")):
                continue
            if NOT_SET_LINE.match(line):
                name, value = line.split()[1][len("CONFIG_"):], "n"
            else:
                assert FRAGMENT_LINE.match(line), "%s: not a kernel config line: %r" % (where, line)
                name, value = line[len("CONFIG_"):].split("=", 1)
            assert name not in options, "%s: CONFIG_%s set twice" % (where, name)
            options[name] = value
    return options


def defconfig_symbols(name):
    """[(symbol, value)] of one of our defconfigs, "n" for "# X is not set"."""
    symbols = []
    for line in read("configs", name).splitlines():
        if line.startswith("BR2_"):
            symbol, value = line.split("=", 1)
            symbols.append((symbol, value))
        elif re.match(r"^# BR2_\w+ is not set$", line):
            symbols.append((line.split()[1], "n"))
        else:
            assert not line.strip() or line.startswith("#"), "%s: bad line %r" % (name, line)
    return symbols


def expand(value):
    """A defconfig path value as Buildroot sees it (our external path made absolute)."""
    return value.strip('"').replace("$(BR2_EXTERNAL_IKECORE_PATH)", BOARD)


SNAPSHOTS = os.path.join(TOP, "..", "shared", "buildroot")


@pytest.fixture(scope="session")
def buildroot(tmp_path_factory):
    """A Buildroot source tree: $BUILDROOT_DIR, else the snapshot in ../shared/buildroot/
    unpacked into a temporary directory (about a second)."""
    given = os.environ.get("BUILDROOT_DIR")
    if given:
        assert os.path.isfile(os.path.join(given, "Config.in")), "BUILDROOT_DIR=%s is no Buildroot" % given
        return given
    tarballs = sorted(glob.glob(os.path.join(SNAPSHOTS, "buildroot-*.tar.xz")))
    assert tarballs, ("no Buildroot: set BUILDROOT_DIR or put a snapshot (buildroot-*.tar.xz) in %s"
                      % os.path.normpath(SNAPSHOTS))
    root = tmp_path_factory.mktemp("buildroot")
    subprocess.run(["tar", "-xJf", tarballs[-1], "-C", str(root)], check=True)
    return str(root)


# --- the external tree --------------------------------------------------------------------------

def test_external_desc_names_the_tree_ikecore():
    fields = dict(line.split(":", 1) for line in read("external.desc").splitlines() if ":" in line)
    assert fields["name"].strip() == "IKECORE"     # -> $(BR2_EXTERNAL_IKECORE_PATH)
    assert fields["desc"].strip()


def test_config_in_sources_every_package_and_external_mk_includes_them():
    packages = sorted(os.listdir(os.path.join(BOARD, "package")))
    assert "python-ikecore" in packages
    config_in = read("Config.in")
    for package in packages:
        assert os.path.isfile(os.path.join(BOARD, "package", package, "Config.in")), package
        assert os.path.isfile(os.path.join(BOARD, "package", package, package + ".mk")), package
        assert 'source "$BR2_EXTERNAL_IKECORE_PATH/package/%s/Config.in"' % package in config_in
    assert "$(BR2_EXTERNAL_IKECORE_PATH)/package/*/*.mk" in read("external.mk")


def test_python_ikecore_mk_uses_the_python_package_infrastructure_on_firmware():
    mk = read("package", "python-ikecore", "python-ikecore.mk")
    variables = dict(re.findall(r"^(PYTHON_IKECORE_\w+) = (.*)$", mk, re.M))
    assert variables["PYTHON_IKECORE_SITE"] == "$(BR2_EXTERNAL_IKECORE_PATH)/../firmware"
    assert variables["PYTHON_IKECORE_SITE_METHOD"] == "local"
    assert variables["PYTHON_IKECORE_SETUP_TYPE"] == "setuptools"
    assert variables["PYTHON_IKECORE_VERSION"]
    assert mk.rstrip().endswith("$(eval $(python-package))")
    # every hook named is defined
    for hook in re.findall(r"_HOOKS \+= (\w+)", mk):
        assert "define %s\n" % hook in mk, hook
    assert os.path.isdir(os.path.join(BOARD, "..", "firmware", "ikecore"))


def test_pyproject_packages_the_daemon_and_the_web_ui():
    import setuptools
    with open(os.path.join(BOARD, "package", "python-ikecore", "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"
    find = project["tool"]["setuptools"]["packages"]["find"]
    found = setuptools.find_packages(where=os.path.join(TOP, "firmware"), include=find["include"])
    assert "ikecore" in found
    if os.path.isfile(os.path.join(TOP, "firmware", "webui", "__init__.py")):
        assert "webui" in found


# --- what the python-ikecore package brings onto a board ---------------------------------------

FIRMWARE = os.path.join(TOP, "firmware")
OUR_PACKAGES = {"ikecore", "webui"}
# Standard-library modules Buildroot's python3 builds only when an option is on.
PYTHON3_OPTIONS = {"_hashlib": "SSL", "ssl": "SSL", "zlib": "ZLIB", "sqlite3": "SQLITE",
                   "curses": "CURSES", "readline": "READLINE", "lzma": "XZ", "bz2": "BZIP2",
                   "unicodedata": "UNICODEDATA", "decimal": "DECIMAL", "pyexpat": "PYEXPAT",
                   "xml": "PYEXPAT", "dbm": "BERKELEYDB", "zstd": "ZSTD"}


def firmware_imports():
    """{top-level module: [files importing it]} over every import statement in firmware/, those
    inside functions too (the lazy ones run on a board as well)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(FIRMWARE, "**", "*.py"), recursive=True)):
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], []).append(os.path.relpath(path, TOP))
    return found


def our_selects():
    return set(re.findall(r"^\s*select\s+(BR2_PACKAGE_\w+)", read("package", "python-ikecore", "Config.in"),
                          re.M))


def test_python_ikecore_selects_every_module_the_firmware_imports():
    selects = our_selects()
    missing = []
    for module, files in sorted(firmware_imports().items()):
        if module in OUR_PACKAGES:
            continue
        if module in sys.stdlib_module_names:
            symbol = PYTHON3_OPTIONS.get(module) and "BR2_PACKAGE_PYTHON3_" + PYTHON3_OPTIONS[module]
        else:
            symbol = "BR2_PACKAGE_PYTHON_" + module.upper().replace("-", "_")
        if symbol and symbol not in selects:
            missing.append("%s (imported by %s)" % (symbol, ", ".join(sorted(set(files)))))
    assert not missing, "board/package/python-ikecore/Config.in must select %s" % missing
    # The crypto provider loads libcrypto through _hashlib's: the ssl option builds it.
    assert "BR2_PACKAGE_PYTHON3_SSL" in selects


def test_python_ikecore_selects_only_packages_buildroot_has(buildroot):
    for symbol in sorted(our_selects()):
        name = symbol[len("BR2_PACKAGE_"):].lower().replace("_", "-")
        if name.startswith("python3-"):
            name = "python3"
        config_in = os.path.join(buildroot, "package", name, "Config.in")
        assert os.path.isfile(config_in), symbol
        with open(config_in) as f:
            assert re.search(r"^\s*(menu)?config\s+%s\s*$" % symbol, f.read(), re.M), symbol


def test_requirements_buildroot_is_what_the_snapshot_gives(buildroot):
    spec = importlib.util.spec_from_file_location(
        "buildroot_versions", os.path.join(BOARD, "buildroot_versions.py"))
    buildroot_versions = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(buildroot_versions)
    with open(os.path.join(TOP, "requirements-buildroot.txt")) as f:
        committed = f.read()
    snapshot = re.search(r"^# Generated by board/buildroot_versions.py from (\S+)", committed, re.M)
    assert snapshot, "requirements-buildroot.txt has no generator header"
    generated = buildroot_versions.requirements(buildroot, snapshot.group(1))
    assert committed == generated, ("requirements-buildroot.txt is stale: rerun "
                                    "`python3 board/buildroot_versions.py BUILDROOT_DIR --name %s "
                                    "-o requirements-buildroot.txt`" % snapshot.group(1))
    pins = dict(line.split("==") for line in committed.splitlines() if "==" in line)
    for module in ("cryptography", "pyroute2", "aiohttp", "jinja2", "tomlkit"):
        assert module in pins, module


# --- kernel fragments ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", FRAGMENTS, ids=os.path.basename)
def test_kernel_fragment_is_well_formed(path):
    assert fragment_options(path)


def test_kernel_fragment_has_what_ipsec_and_the_image_need():
    options = fragment_options(FRAGMENTS[0])
    missing = [name for name in REQUIRED_KERNEL if options.get(name) != "y"]
    assert not missing, "ikecore.fragment lacks =y for %s" % missing
    assert options.get("INET_ESP_OFFLOAD") == "n"


def test_kernel_fragment_names_exist_in_the_kernel_source():
    """Against an unpacked Linux 6.1 tree (the offline build's cache) when there is one."""
    roots = [os.environ.get("LINUX_SOURCE_DIR"),
             os.path.join(os.environ.get("IKECORE_CACHE", "/var/cache/ikecore"), "kernel",
                          "linux-source-6.1")]
    root = next((r for r in roots if r and os.path.isfile(os.path.join(r, "Kconfig"))), None)
    if root is None:
        pytest.skip("no unpacked kernel source (LINUX_SOURCE_DIR or the offline build's cache); "
                    "qemu/build_kernel.sh checks every fragment option when it configures")
    found = subprocess.run(["grep", "-rhoE", "--include=Kconfig*", r"^\s*(menu)?config\s+[A-Z0-9_]+",
                            root], capture_output=True, text=True).stdout
    symbols = set(line.split()[-1] for line in found.splitlines())
    for path in FRAGMENTS:
        unknown = sorted(set(fragment_options(path)) - symbols)
        assert not unknown, "%s: unknown kernel options %s" % (os.path.basename(path), unknown)


# --- defconfigs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", DEFCONFIGS)
def test_defconfig_has_our_packages_fragment_and_existing_paths(name):
    symbols = dict(defconfig_symbols(name))
    for symbol in REQUIRED_PACKAGES:
        assert symbols.get(symbol) == "y", "%s lacks %s=y" % (name, symbol)
    fragments = expand(symbols["BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES"]).split()
    assert os.path.join(BOARD, "kernel", "ikecore.fragment") in fragments
    assert expand(symbols["BR2_ROOTFS_OVERLAY"]) == os.path.join(BOARD, "..", "rootfs-overlay")
    assert os.path.join(BOARD, "post-build.sh") in expand(symbols["BR2_ROOTFS_POST_BUILD_SCRIPT"]).split()
    # every file of ours a defconfig names exists and scripts are executable
    for symbol, value in symbols.items():
        for word in expand(value).split():
            if word.startswith(BOARD):
                assert os.path.exists(word), "%s: %s names missing %s" % (name, symbol, word)
                if word.endswith(".sh"):
                    assert os.access(word, os.X_OK), "%s is not executable" % word


@pytest.mark.parametrize("name", DEFCONFIGS)
def test_defconfig_symbols_exist_in_buildroot(name, buildroot):
    found = subprocess.run(["grep", "-rhoE", "--include=Config.in*", r"^\s*(menu)?config\s+BR2_\w+",
                            buildroot, BOARD], capture_output=True, text=True).stdout
    known = set(line.split()[-1] for line in found.splitlines())
    unknown = [symbol for symbol, _ in defconfig_symbols(name) if symbol not in known]
    assert not unknown, "%s: symbols Buildroot does not know: %s" % (name, unknown)


@pytest.mark.parametrize("name", DEFCONFIGS)
def test_buildroot_accepts_defconfig_and_keeps_our_options(name, tmp_path, buildroot):
    out = tmp_path / "out"
    result = subprocess.run(["make", "-s", "-C", buildroot, "BR2_EXTERNAL=" + BOARD, "O=%s" % out, name],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in (result.stdout + result.stderr).lower(), result.stdout + result.stderr
    with open(out / ".config") as f:
        final = f.read()
    lost = []
    for symbol, value in defconfig_symbols(name):
        want = "# %s is not set" % symbol if value == "n" else "%s=%s" % (symbol, value)
        if want not in final.splitlines():
            lost.append(want)
    assert not lost, "%s: Buildroot dropped %s" % (name, lost)


# --- board scripts, run for real -----------------------------------------------------------------

@pytest.mark.parametrize("script", ["post-build.sh", "nanopi-r2s/post-build.sh",
                                    "qemu-aarch64-virt/post-image.sh"])
def test_scripts_are_valid_sh(script):
    path = os.path.join(BOARD, script)
    assert os.access(path, os.X_OK)
    subprocess.run(["sh", "-n", path], check=True)


def make_target(tmp_path):
    """A target directory as Buildroot leaves it before post-build: packages and the overlay."""
    target = tmp_path / "target"
    init = target / "etc" / "init.d"
    init.mkdir(parents=True)
    for name in ("S01syslogd", "S40network", "S20seedrng", "S40ikecore"):
        (init / name).write_text("#!/bin/sh\n")
        (init / name).chmod(0o644)
    (target / "etc" / "ikecore").mkdir()
    (target / "etc" / "ikecore" / "ikecore.toml").write_text("[general]\n")
    (target / "etc" / "inittab").write_text("::sysinit:/etc/init.d/rcS\nttyAMA0::respawn:-/bin/sh\n")
    (target / "usr" / "lib" / "python3.13" / "site-packages" / "ikecore").mkdir(parents=True)
    (target / "etc" / "rauc").mkdir()
    shutil.copy(os.path.join(TOP, "rootfs-overlay", "etc", "rauc", "system.conf"), target / "etc" / "rauc")
    return target


def fake_host_mkimage(tmp_path):
    """Buildroot's host mkimage stands in as a copy, so the script's call and arguments are real;
    returns the environment a post-build script gets."""
    host = tmp_path / "host" / "bin"
    host.mkdir(parents=True)
    (host / "mkimage").write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\n'
                                  'while [ $# -gt 2 ]; do shift; done; cp "$1" "$2"\n')
    (host / "mkimage").chmod(0o755)
    env = dict(os.environ, HOST_DIR=str(tmp_path / "host"), BASE_DIR=str(tmp_path))
    env.pop("IKECORE_RAUC_KEYRING", None)
    return env


def test_post_build_gives_the_offline_images_layout(tmp_path):
    target = make_target(tmp_path)
    subprocess.run([os.path.join(BOARD, "post-build.sh"), str(target)], check=True)
    facts = release.read(str(target / release.PATH))
    assert facts["VERSION"] != "unknown" and facts["COMPATIBLE"] == "ikecore-qemu-aarch64-virt", facts
    init = target / "etc" / "init.d"
    # Buildroot's syslogd/network scripts give way to the overlay's; the rest stay, executable
    assert sorted(os.listdir(init)) == ["S20seedrng", "S40ikecore"]
    assert all(os.access(init / name, os.X_OK) for name in os.listdir(init))
    # /etc/ikecore -> the data partition; its overlay content becomes the factory defaults
    assert os.readlink(target / "etc" / "ikecore") == "/data/ikecore"
    assert (target / "usr" / "share" / "ikecore" / "factory" / "ikecore.toml").is_file()
    assert (target / "data").is_dir()
    # the init scripts' Debian path reaches Buildroot's site-packages
    assert (target / "usr" / "lib" / "python3" / "dist-packages" / "ikecore").is_dir()
    # a second run (make rebuilds) changes nothing and does not fail
    subprocess.run([os.path.join(BOARD, "post-build.sh"), str(target)], check=True)
    assert os.readlink(target / "etc" / "ikecore") == "/data/ikecore"


def test_r2s_post_build_boots_ab_slots_from_sd_with_data_partition_and_serial_shell(tmp_path):
    target = make_target(tmp_path)
    env = fake_host_mkimage(tmp_path)
    host = tmp_path / "host" / "bin"
    subprocess.run([os.path.join(BOARD, "nanopi-r2s", "post-build.sh"), str(target)], check=True, env=env)
    assert "-T script" in (host / "args").read_text()
    script = (target / "boot" / "boot.scr").read_text()
    assert "root=/dev/mmcblk0p${rauc_part}" in script and "rauc.slot=${rauc_slot}" in script
    assert "ikecore.data=/dev/mmcblk0p3" in script and "/boot/rk3328-nanopi-r2s.dtb" in script
    conf = (target / "etc" / "rauc" / "system.conf").read_text()
    assert "bootloader=uboot" in conf and "compatible=ikecore-nanopi-r2s" in conf
    assert "device=/dev/mmcblk0p1" in conf and "device=/dev/mmcblk0p2" in conf
    assert (target / "etc" / "fw_env.config").read_text().splitlines()[-1] == "/dev/mmcblk0 0x3F8000 0x8000"
    assert "0x3F8000" in read("nanopi-r2s", "uboot-env.fragment")
    # a development keyring made next to the build output, not in the tree
    assert (target / "etc" / "rauc" / "keyring.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert (tmp_path / "keys" / "development.key.pem").is_file()
    assert "ttyS2::respawn:-/bin/sh" in (target / "etc" / "inittab").read_text()


@pytest.mark.parametrize("name", DEFCONFIGS)
def test_post_build_scripts_write_the_release_the_firmware_page_reads(name, tmp_path, monkeypatch):
    """The defconfig's post-build scripts, in its order, on a target as Buildroot leaves it: the
    Firmware page then shows this version and checks bundles against the board's compatible
    string (its RAUC system.conf), the same file the offline image's build writes."""
    target = make_target(tmp_path)
    env = dict(fake_host_mkimage(tmp_path), IKECORE_VERSION="v9.8-board", SOURCE_DATE_EPOCH="1796601600")
    for script in expand(dict(defconfig_symbols(name))["BR2_ROOTFS_POST_BUILD_SCRIPT"]).split():
        subprocess.run([script, str(target)], check=True, env=env)
    system_conf = (target / "etc" / "rauc" / "system.conf").read_text()
    compatible = re.search(r"^compatible=(\S+)$", system_conf, re.M).group(1)
    # the page reads release.FILE on the router: here, that path below the target directory
    monkeypatch.setattr(release, "FILE", str(target) + release.FILE)
    assert views_firmware.release.read() == {"VERSION": "v9.8-board", "BUILD_DATE": "2026-12-07T00:00:00Z",
                                             "COMPATIBLE": compatible}
    if "nanopi_r2s" in name:
        assert compatible == "ikecore-nanopi-r2s"


def test_release_writer_names_what_is_wrong(tmp_path):
    run = [sys.executable, "-m", "webui.release", str(tmp_path), "--version", "v1"]
    env = dict(os.environ, PYTHONPATH=os.path.join(TOP, "firmware"))
    result = subprocess.run(run, capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "system.conf: cannot read" in result.stderr, result.stderr
    (tmp_path / "etc" / "rauc").mkdir(parents=True)
    (tmp_path / "etc" / "rauc" / "system.conf").write_text("[system]\nbootloader=uboot\n")
    result = subprocess.run(run, capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "no compatible= line" in result.stderr, result.stderr
    result = subprocess.run(run[:-1] + ["two words"], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "must be one word" in result.stderr, result.stderr
    assert not (tmp_path / release.PATH).exists()


def rauc_conf(text):
    """{section: {key: value}} of a RAUC system.conf."""
    sections, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current[key] = value
    return sections


def test_r2s_rauc_and_u_boot_agree_with_the_qemu_slots():
    """The board's RAUC system.conf, U-Boot script and environment match the QEMU image's slots
    and boot policy (what test_firmware_upgrade.py runs), so one bundle layout and one health
    check (S60health) serve both; only the board's compatible, devices and backend differ."""
    qemu = rauc_conf(open(os.path.join(TOP, "rootfs-overlay", "etc", "rauc", "system.conf")).read())
    r2s = rauc_conf(read("nanopi-r2s", "rauc-system.conf"))
    slots = lambda conf: {k: v["bootname"] for k, v in conf.items() if k.startswith("slot.")}
    assert slots(qemu) == slots(r2s) == {"slot.rootfs.0": "A", "slot.rootfs.1": "B"}
    assert (qemu["system"]["compatible"], r2s["system"]["compatible"]) == \
        ("ikecore-qemu-aarch64-virt", "ikecore-nanopi-r2s")
    for key in ("bundle-formats", "data-directory", "mountprefix"):
        assert qemu["system"][key] == r2s["system"][key], key
    assert qemu["keyring"] == r2s["keyring"]
    assert qemu["handlers"]["post-install"] == r2s["handlers"]["post-install"]
    assert (qemu["system"]["bootloader"], r2s["system"]["bootloader"]) == ("custom", "uboot")
    # the same tries: one boot for a fresh slot, three for a good one (QEMU: the custom backend)
    backend = open(os.path.join(TOP, "rootfs-overlay", "usr", "libexec", "ikecore", "boot-state")).read()
    assert re.search(r"^TRIES=3\b", backend, re.M) and re.search(r"^FIRST_TRIES=1\b", backend, re.M)
    assert (r2s["system"]["boot-attempts"], r2s["system"]["boot-attempts-primary"]) == ("3", "1")
    # U-Boot's script uses RAUC's uboot-backend variables for exactly these boot names, boots
    # partition N of system.conf's /dev/mmcblk0pN for each, and names the slot as RAUC expects
    script = read("nanopi-r2s", "boot.cmd")
    assert "${BOOT_ORDER}" in script
    for section, bootname in slots(r2s).items():
        part = re.fullmatch(r"/dev/mmcblk0p(\d)", r2s[section]["device"]).group(1)
        assert "setexpr BOOT_{0}_LEFT ${{BOOT_{0}_LEFT}} - 1".format(bootname) in script
        assert re.search(r'test "\$\{slot\}" = "%s".*\n.*\n\s+setenv rauc_part %s\n\s+setenv rauc_slot %s\n'
                         % (bootname, part, bootname), script), (bootname, part)
    assert "root=/dev/mmcblk0p${rauc_part}" in script and "rauc.slot=${rauc_slot}" in script
    # slots 1 and 2, data 3, in genimage's partition order
    parts = re.findall(r"partition (\S+) \{\s+partition-type = 0x83\s+(?:offset = \S+\s+)?image = \"(\S+)\"",
                       read("nanopi-r2s", "genimage.cfg"))
    assert parts == [("rootfs", "rootfs.ext4"), ("rootfs-b", "rootfs.ext4"), ("data", "data.ext4")], parts
    assert "ikecore.data=/dev/mmcblk0p3" in script
    # Linux (fw_setenv) and U-Boot find the environment at the same place
    env = read("nanopi-r2s", "fw_env.config").splitlines()[-1].split()
    fragment = dict(l.split("=", 1) for l in read("nanopi-r2s", "uboot-env.fragment").splitlines()
                    if l.startswith("CONFIG_"))
    assert env == ["/dev/mmcblk0", fragment["CONFIG_ENV_OFFSET"], fragment["CONFIG_ENV_SIZE"]]
    assert fragment["CONFIG_ENV_MMC_DEVICE_INDEX"] == fragment["CONFIG_SYS_MMC_ENV_DEV"] == "0"
    # the environment lies in the gap between idbloader (32K) and u-boot.itb (8M)
    start, size = int(fragment["CONFIG_ENV_OFFSET"], 16), int(fragment["CONFIG_ENV_SIZE"], 16)
    assert 1024 * 1024 <= start and start + size <= 8 * 1024 * 1024


def test_qemu_post_image_writes_a_data_disk_and_start_script(tmp_path):
    mkfs = shutil.which("mkfs.ext4") or "/sbin/mkfs.ext4"
    if not os.path.exists(mkfs):
        pytest.skip("mkfs.ext4 (e2fsprogs) is not installed")
    host = tmp_path / "host"
    (host / "sbin").mkdir(parents=True)
    (host / "sbin" / "mkfs.ext4").symlink_to(mkfs)
    images = tmp_path / "images"
    images.mkdir()
    env = dict(os.environ, BINARIES_DIR=str(images), HOST_DIR=str(host))
    subprocess.run([os.path.join(BOARD, "qemu-aarch64-virt", "post-image.sh")], check=True, env=env)
    label = subprocess.run(["/sbin/e2label", str(images / "data.ext4")], capture_output=True,
                           text=True, check=True).stdout.strip()
    assert label == "ikecore-data"
    start = (images / "start-qemu.sh").read_text()
    assert os.access(images / "start-qemu.sh", os.X_OK)
    subprocess.run(["sh", "-n", str(images / "start-qemu.sh")], check=True)
    assert "netdev=wan" in start and "netdev=lan" in start and "hostfwd=tcp:127.0.0.1:8080-" in start


def test_r2s_genimage_keeps_upstream_boot_layout_and_adds_data_partition():
    cfg = read("nanopi-r2s", "genimage.cfg")
    assert re.search(r'image = "idbloader.img"\s+offset = 32K', cfg)
    assert re.search(r'image = "u-boot.itb"\s+offset = 8M', cfg)
    assert re.search(r'offset = 16M\s+image = "rootfs.ext4"', cfg)
    assert re.search(r'partition rootfs-b \{\s+partition-type = 0x83\s+image = "rootfs.ext4"', cfg)
    assert 'image = "data.ext4"' in cfg and 'label = "ikecore-data"' in cfg
