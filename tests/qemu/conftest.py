"""Boot the firmware image once per test session and share it (tests/qemu/).

The image comes from `make image` (a prerequisite of `make test`). Console logs are kept in the
session's temporary directory; a failed boot fails the fixture with the console tail."""
import os

import pytest

from router import Router, default_images
from support.paths import REPO as TOP  # noqa: F401  (the tests' name for the repository)

IMAGES = os.environ.get("IKECORE_IMAGES", default_images())
DATA_DISK_BYTES = 64 * 1024 * 1024


def images_or_skip(*extra, make="make image"):
    """IMAGES, or skip naming what is missing and the `make` that builds it; extra: more files
    (a peer's root filesystem: `make image-strongswan`)."""
    missing = [p for p in ("Image", "rootfs.squashfs", "data-template.img") + extra
               if not os.path.exists(os.path.join(IMAGES, p))]
    if missing:
        pytest.skip(f"no firmware image in {IMAGES} (missing {', '.join(missing)}): run `{make}`")
    return IMAGES


def blank_data_disk(path):
    """An all-zero data disk: the first boot must format it (test_image checks the one log line)."""
    with open(path, "wb") as f:
        f.truncate(DATA_DISK_BYTES)
    return str(path)


def boot_router(work, name, **router_options):
    """A router of its own on a blank data disk, its console log in `work`; started."""
    r = Router(images_or_skip(), blank_data_disk(work / "data.img"), name=name,
               log_path=str(work / "console.log"), **router_options)
    r.start(timeout=300)
    return r


@pytest.fixture(scope="session")
def router(tmp_path_factory):
    r = boot_router(tmp_path_factory.mktemp("router"), "router")
    yield r
    r.stop()


@pytest.fixture(scope="module")
def sites(request, tmp_path_factory):
    """Two routers (sites A and B, e2e.SITES) booted from the built image for one test module,
    their daemons stopped until e2e.configure gives them a scenario. A module that sets
    SITE_B_ROOTFS (a file in IMAGES) boots site B from that root filesystem instead, with
    SITE_B_MAKE the command that builds it (the strongSwan and Libreswan peers)."""
    from e2e import boot_sites, stop_sites
    rootfs = getattr(request.module, "SITE_B_ROOTFS", None)
    if rootfs:
        images = images_or_skip(rootfs, make=getattr(request.module, "SITE_B_MAKE", "make image"))
    else:
        images = images_or_skip()
    a, b = boot_sites(tmp_path_factory.mktemp("sites"), images,
                      rootfs={"b": rootfs} if rootfs else None)
    yield a, b
    stop_sites(a, b)
