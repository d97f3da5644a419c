"""Boot the firmware image once per test session and share it (tests/qemu/).

The image comes from `make image` (a prerequisite of `make test`). Console logs are kept in the
session's temporary directory; a failed boot fails the fixture with the console tail."""
import os
import sys

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "qemu"))

from router import Router, default_images  # noqa: E402

IMAGES = os.environ.get("IKECORE_IMAGES", default_images())


def images_or_skip():
    missing = [p for p in ("Image", "rootfs.squashfs", "data-template.img")
               if not os.path.exists(os.path.join(IMAGES, p))]
    if missing:
        pytest.skip(f"no firmware image in {IMAGES} (missing {', '.join(missing)}): run `make image`")
    return IMAGES


@pytest.fixture(scope="session")
def router(tmp_path_factory):
    images = images_or_skip()
    work = tmp_path_factory.mktemp("router")
    # a blank data disk: the first boot must format it (test_image checks the one log line)
    data = work / "data.img"
    with open(data, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    r = Router(images, str(data), name="router", log_path=str(work / "console.log"))
    r.start(timeout=300)
    yield r
    r.stop()


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """Two routers (sites A and B, e2e.SITES) booted from the built image for one test module,
    their daemons stopped until e2e.configure gives them a scenario."""
    from e2e import boot_sites, stop_sites
    a, b = boot_sites(tmp_path_factory.mktemp("sites"), images_or_skip())
    yield a, b
    stop_sites(a, b)

