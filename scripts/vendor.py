#!/usr/bin/env python3
"""Vendor pinned front-end files from the npm registry (stdlib only, no Node).

    python scripts/vendor.py            fetch, verify, write (no download if
                                        the files on disk already match)
    python scripts/vendor.py --check    verify files on disk against the pins;
                                        no network; non-zero exit on mismatch

Every tarball and every extracted file is checked against a pinned sha256.
Any mismatch is a hard error and nothing is written.  To upgrade a package,
edit its row in PACKAGES (version and all hashes) after verifying the new
tarball yourself, e.g. against `npm view <name>@<version> dist.integrity`.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "faka" / "static" / "vendor"
# Files only the tests use (never served): a package with "tests": True goes here.
TESTS_DIR = Path(__file__).resolve().parent.parent / "tests" / "vendor"
MAX_TARBALL_BYTES = 20 * 1024 * 1024

PACKAGES = [
    {
        "name": "htmx.org",
        "version": "2.0.11",
        "dest": "htmx",
        # sha256 of htmx.org-2.0.11.tgz (its sha512 equals npm's dist.integrity)
        "tarball_sha256": "165a2655073e9e6e55e307a7c74e8ebcdb76afb7701f9c16cfd106a13add408e",
        # tarball member -> (file name in dest, pinned sha256)
        "files": {
            "package/dist/htmx.min.js": (
                "htmx.min.js",
                "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717",
            ),
            "package/LICENSE": (
                "LICENSE",
                "d3d2456f76414f2456104660ebd65aff1c04cd7966b942bdabd63f3cdb316a38",
            ),
        },
        "main": "htmx.min.js",  # file whose hash is recorded in VERSION
    },
    {
        # The captcha widget. Its 3.x line speaks ALTCHA's proof-of-work v2, the default
        # protocol of the Python `altcha` 2.x that verifies it. The "external" build is the
        # one that works under our CSP: it injects no <style> (its CSS is a separate file)
        # and bundles no blob: workers (faka/static/js/captcha.js registers the PBKDF2
        # worker file from this folder).
        "name": "altcha",
        "version": "3.2.2",
        "dest": "altcha",
        # sha256 of altcha-3.2.2.tgz (its sha512 equals npm's dist.integrity)
        "tarball_sha256": "0a1d0759ac0c4ada26e0622a6f8a0926da915078f27b3edec87453f8db33131c",
        "files": {
            "package/dist/external/altcha.min.js": (
                "altcha.min.js",
                "959494398e8fcde3414d09309ade24b444ede098b04dec1514f4754279bff031",
            ),
            "package/dist/external/altcha.css": (
                "altcha.css",
                "03622256effb4e962d0c1da9a59684cf237f541f290703934c07a97dabcbad47",
            ),
            "package/dist/workers/pbkdf2.js": (
                "pbkdf2.js",
                "7862add9c9d3d847ded3da928edcf406b46478754b9883351111414825b9c86f",
            ),
            "package/LICENSE.txt": (
                "LICENSE",
                "bee1fb9d9c97d42c12c22332c5250f2fb1ef5c2321f6f82beb23e3b77be50a29",
            ),
        },
        "main": "altcha.min.js",
    },
    {
        # The accessibility checker the browser tests inject into pages (tests/slow/test_accessibility.py).
        "name": "axe-core",
        "version": "4.14.1",
        "dest": "axe-core",
        "tests": True,
        # sha256 of axe-core-4.14.1.tgz (its sha512 equals npm's dist.integrity)
        "tarball_sha256": "e6b0ce02b84d892e2e33e403485e7f3d6c29e2be6df65daf44d89ba564139745",
        "files": {
            "package/axe.min.js": (
                "axe.min.js",
                "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c",
            ),
            "package/LICENSE": (
                "LICENSE",
                "af175b9d96ee93c21a036152e1b905b0b95304d4ae8c2c921c7609100ba8df7e",
            ),
        },
        "main": "axe.min.js",
    },
]


class VendorError(Exception):
    pass


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tarball_url(pkg: dict) -> str:
    base = pkg["name"].rsplit("/", 1)[-1]  # scoped names: @s/n -> n-<ver>.tgz
    return f"{REGISTRY}/{pkg['name']}/-/{base}-{pkg['version']}.tgz"


def version_text(pkg: dict) -> str:
    main_hash = next(h for out, h in pkg["files"].values() if out == pkg["main"])
    return (
        f"{pkg['name']} {pkg['version']}\n"
        f"source {tarball_url(pkg)}\n"
        f"tarball-sha256 {pkg['tarball_sha256']}\n"
        f"{pkg['main']}-sha256 {main_hash}\n"
    )


def destination(pkg: dict, root: Path) -> Path:
    """Where a package's files go: the test-only folder, or the vendor root."""
    return (TESTS_DIR if pkg.get("tests") else root) / pkg["dest"]


def problems_on_disk(pkg: dict, root: Path) -> list[str]:
    """Return a list of mismatches between disk and pins (empty = all good)."""
    dest = destination(pkg, root)
    problems = []
    for out_name, want in pkg["files"].values():
        path = dest / out_name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif (got := sha256(path.read_bytes())) != want:
            problems.append(f"{path}: sha256 {got} != pinned {want}")
    vpath = dest / "VERSION"
    if not vpath.is_file():
        problems.append(f"{vpath}: missing")
    elif vpath.read_text(encoding="utf-8") != version_text(pkg):
        problems.append(f"{vpath}: does not match pinned version/hashes")
    return problems


def fetch_tarball(pkg: dict) -> bytes:
    url = tarball_url(pkg)
    print(f"downloading {url}")
    with urllib.request.urlopen(url, timeout=60) as resp:
        data = resp.read(MAX_TARBALL_BYTES + 1)
    if len(data) > MAX_TARBALL_BYTES:
        raise VendorError(f"{url}: tarball larger than {MAX_TARBALL_BYTES} bytes")
    got = sha256(data)
    if got != pkg["tarball_sha256"]:
        raise VendorError(f"{url}: tarball sha256 {got} != pinned {pkg['tarball_sha256']}")
    return data


def extract(pkg: dict, data: bytes) -> dict[str, bytes]:
    """Return {out_name: bytes} for the pinned members, all hash-verified."""
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member_name, (out_name, want) in pkg["files"].items():
            try:
                member = tar.getmember(member_name)
            except KeyError:
                raise VendorError(f"{pkg['name']}: {member_name} not in tarball") from None
            if not member.isfile():
                raise VendorError(f"{pkg['name']}: {member_name} is not a regular file")
            content = tar.extractfile(member).read()
            got = sha256(content)
            if got != want:
                raise VendorError(f"{pkg['name']}: {member_name} sha256 {got} != pinned {want}")
            out[out_name] = content
    out["VERSION"] = version_text(pkg).encode("utf-8")
    return out


def write_atomic(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check(root: Path) -> int:
    failed = False
    for pkg in PACKAGES:
        problems = problems_on_disk(pkg, root)
        if problems:
            failed = True
            print(f"FAIL {pkg['name']} {pkg['version']}:", file=sys.stderr)
            for p in problems:
                print(f"  {p}", file=sys.stderr)
        else:
            print(f"ok   {pkg['name']} {pkg['version']}")
    if failed:
        print(
            "vendored files do not match the pins in scripts/vendor.py; run `python scripts/vendor.py` to restore them",
            file=sys.stderr,
        )
        return 1
    return 0


def vendor(root: Path) -> int:
    # Download and verify everything first; write only if all of it is good.
    staged: list[tuple[dict, dict[str, bytes]]] = []
    for pkg in PACKAGES:
        if not problems_on_disk(pkg, root):
            print(f"up to date {pkg['name']} {pkg['version']}")
            continue
        staged.append((pkg, extract(pkg, fetch_tarball(pkg))))
    for pkg, files in staged:
        dest = destination(pkg, root)
        for out_name, content in files.items():
            write_atomic(dest / out_name, content)
        print(f"wrote {pkg['name']} {pkg['version']} -> {dest}")
    return check(root)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="verify files on disk against the pins (no network)")
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"vendor root folder (default: {DEFAULT_DIR})")
    args = ap.parse_args(argv)
    try:
        return check(args.dir) if args.check else vendor(args.dir)
    except VendorError as e:
        print(f"error: {e}; nothing written", file=sys.stderr)
        return 2
    except OSError as e:  # network or filesystem failure
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
