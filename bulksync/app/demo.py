"""`bulksync demo`: a whole Quable run on a fresh machine, with no account anywhere.

It starts the sandbox in-process on a free loopback port (about 20 ms of latency, Quable's
rate windows time-scaled so the pacing shows), writes a sample catalogue to a temporary
folder (real PNG files pushed in two steps, remotePath assets, links from documents to assets
and to other documents) and runs the real engine and Quable connector over it.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import orjson

from bulksync.app import _loop
from bulksync.app.config import Config, InputsConfig, LimitsConfig, OutputConfig, TargetConfig
from bulksync.app.registry import target_spec
from bulksync.app.runner import RunReport, run_job_async
from bulksync.sandbox import SandboxSettings, running_sandbox
from bulksync.spi._errors import ConfigError

USER_ENV, PASSWORD_ENV = "BULKSYNC_DEMO_QUABLE_USER", "BULKSYNC_DEMO_QUABLE_PASSWORD"


@dataclass(slots=True)
class DemoOptions:
    assets: int = 500  # assets with a file (two steps: upload, then create)
    remote_assets: int = 100  # assets with a remotePath (one step)
    links: int = 2000
    documents: int = 200
    faults: float = 0.0  # share of requests failing transiently (503, drops, lost answers)
    latency_ms: float = 20.0
    time_scale: float = 20.0  # Quable's windows run this much faster: 200 requests/s
    links_api: str = "v5"
    workdir: Path | None = None
    stats_interval: float | None = None  # None: the run's default
    stats_json: bool = False


def tiny_png(width: int, height: int, shade: int) -> bytes:
    """A valid greyscale PNG of the given size, built by hand to need no imaging library."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + bytes([shade % 256]) * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def document_code(index: int) -> str:
    """The sandbox seeds documents doc-00001, doc-00002, ..."""
    return f"doc-{index + 1:05d}"


def write_catalogue(folder: Path, options: DemoOptions) -> tuple[Path, Path]:
    media = folder / "media"
    media.mkdir(parents=True, exist_ok=True)
    assets_path, links_path = folder / "assets.jsonl", folder / "links.jsonl"
    asset_ids: list[str] = []
    with open(assets_path, "wb") as out:
        for i in range(options.assets):
            name = f"media/img-{i:05d}.png"
            (folder / name).write_bytes(tiny_png(16 + i % 48, 16 + i % 32, i))
            asset_ids.append(f"asset-{i:05d}")
            item = {"id": asset_ids[-1], "file": name, "classification": "dam_sort"}
            out.write(orjson.dumps(item) + b"\n")
        for i in range(options.remote_assets):
            url = f"https://images.example.com/remote-{i:05d}.jpg"
            asset_ids.append(f"remote-{i:05d}")
            out.write(orjson.dumps({"id": asset_ids[-1], "remotePath": url}) + b"\n")
    documents = max(2, options.documents)
    with open(links_path, "wb") as out:
        for i in range(options.links):
            # Links come grouped by document, as PIM exports list them; half point at the
            # assets of this run (so they wait for them), half at other documents. Within a
            # document the targets run through consecutive indexes, so no link repeats another
            # (a repeat would be a duplicate item) while a document has fewer links than that.
            origin = i * documents // max(1, options.links)
            if i % 2 == 0 and asset_ids:
                target, link_type = asset_ids[(i // 2) % len(asset_ids)], "product_asset"
            else:
                other = 1 + (i // 2) % (documents - 1)  # never the document itself
                target, link_type = document_code((origin + other) % documents), "ref_refCol"
            link = {"from": document_code(origin), "to": target, "type": link_type, "sequence": i}
            out.write(orjson.dumps(link) + b"\n")
    return assets_path, links_path


def demo_sandbox_settings(options: DemoOptions) -> SandboxSettings:
    rate = min(1.0, options.faults)
    overrides = {
        "time_scale": str(options.time_scale),
        "quable.latency.fixed_ms": str(options.latency_ms * 0.75),
        "quable.latency.jitter_ms": str(options.latency_ms * 0.5),
        "quable.seed_documents": str(max(2, options.documents)),
        "quable.session_lifetime_s": "200",  # 10 s at time_scale 20: refreshes show up
        "faults.seed": "7",
        "faults.error_rate": str(rate),
        "faults.error_statuses": "503",
        "faults.disconnect_rate": str(rate * 0.4),
        "faults.drop_after_write_rate": str(rate * 0.4),
    }
    return SandboxSettings().with_overrides(overrides)


def demo_config(options: DemoOptions, folder: Path, base_url: str) -> Config:
    scale = options.time_scale
    return Config(
        target=TargetConfig(
            kind="quable", base_url=base_url, user_env=USER_ENV, password_env=PASSWORD_ENV
        ),
        inputs=InputsConfig(assets=folder / "assets.jsonl", links=folder / "links.jsonl"),
        limits=LimitsConfig(
            rate=[(n, seconds / scale) for n, seconds in target_spec("quable").rate_windows],
            concurrency=16,
            stage_concurrency={"upload": 8},
            max_elapsed_s=60.0,
        ),
        output=_output(options, folder),
        sections={"quable": {"links_api": options.links_api}},
    )


def _output(options: DemoOptions, folder: Path) -> OutputConfig:
    output = OutputConfig(results=folder / "results.jsonl")
    if options.stats_interval is not None:
        if not options.stats_interval >= 0:  # NaN fails too
            raise ConfigError("--stats-interval takes seconds, 0 or more")
        output.stats_interval = options.stats_interval
    if options.stats_json:
        output.stats_format = "json"
    return output


async def _demo(options: DemoOptions, folder: Path) -> RunReport:
    async with running_sandbox(demo_sandbox_settings(options)) as sandbox:
        print(f"sandbox listening on {sandbox.url} (Quable limits x{options.time_scale:g})")
        return await run_job_async(demo_config(options, folder, sandbox.url))


# The sandbox's fault rates (errors, drops, lost answers: 1.8 x --faults) must sum to 1 at most.
MAX_FAULTS = 0.5


def run_demo(options: DemoOptions) -> RunReport:
    """Run in ``options.workdir`` (kept), or in a temporary folder removed afterwards: each
    demo writes a few MB, which must not pile up in the system's temporary folder."""
    if not 0 <= options.faults <= MAX_FAULTS:  # NaN fails too
        raise ConfigError(f"--faults takes a share from 0 to {MAX_FAULTS}, got {options.faults}")
    for name in ("assets", "remote_assets", "links", "documents"):
        if getattr(options, name) < 0:
            raise ConfigError(f"--{name.replace('_', '-')} cannot be negative")
    if options.workdir is not None:
        return _run_in(options, options.workdir)
    with tempfile.TemporaryDirectory(prefix="bulksync-demo-") as folder:
        report = _run_in(options, Path(folder))
        print(
            f"demo folder {folder} removed, the results above with it "
            "(give --workdir DIR to keep the catalogue and results)"
        )
    return report


def _run_in(options: DemoOptions, folder: Path) -> RunReport:
    write_catalogue(folder, options)
    total_assets = options.assets + options.remote_assets
    print(f"demo catalogue in {folder}: {total_assets} assets, {options.links} links")
    # The sandbox's own demo login; real credentials only ever come from the environment.
    os.environ.setdefault(USER_ENV, "sandbox")
    os.environ.setdefault(PASSWORD_ENV, "sandbox")
    return _loop.run(_demo, options, folder)
