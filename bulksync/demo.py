"""`bulksync demo`: a whole run on a fresh machine, with no account anywhere.

It writes a sample catalogue (real PNG files, remote-path assets, links) to a temporary folder
and runs the real engine over it against the built-in fault-injecting fake target.
"""

from __future__ import annotations

import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import orjson

from .config import Config, InputsConfig, LimitsConfig, OutputConfig, TargetConfig
from .runner import RunReport, run_job


@dataclass(slots=True)
class DemoOptions:
    assets: int = 500  # assets with a file (two steps: upload, then create)
    remote_assets: int = 100  # assets with a remotePath (one step)
    links: int = 2000
    faults: float = 0.0  # share of requests that fail transiently (retried)
    latency_s: float = 0.02
    rate: float = 400.0  # requests per second
    workdir: Path | None = None


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


def write_catalogue(folder: Path, options: DemoOptions) -> tuple[Path, Path]:
    media = folder / "media"
    media.mkdir(parents=True, exist_ok=True)
    assets_path, links_path = folder / "assets.jsonl", folder / "links.jsonl"
    with open(assets_path, "wb") as out:
        for i in range(options.assets):
            name = f"media/img-{i:05d}.png"
            (folder / name).write_bytes(tiny_png(16 + i % 48, 16 + i % 32, i))
            item = {"id": f"asset-{i:05d}", "file": name, "classification": "dam_sort"}
            out.write(orjson.dumps(item) + b"\n")
        for i in range(options.remote_assets):
            url = f"https://images.example.com/remote-{i:05d}.jpg"
            out.write(orjson.dumps({"id": f"remote-{i:05d}", "remotePath": url}) + b"\n")
    with open(links_path, "wb") as out:
        documents = max(1, options.links // 10)
        for i in range(options.links):
            link = {
                "from": f"doc-{i % documents:05d}",
                "to": f"doc-{(i * 7 + 1) % documents:05d}",
                "type": "ref_refCol",
                "sequence": i // documents + 1,
            }
            out.write(orjson.dumps(link) + b"\n")
    return assets_path, links_path


def run_demo(options: DemoOptions) -> RunReport:
    folder = options.workdir or Path(tempfile.mkdtemp(prefix="bulksync-demo-"))
    assets_path, links_path = write_catalogue(folder, options)
    print(
        f"demo catalogue in {folder}: {options.assets + options.remote_assets} assets, "
        f"{options.links} links"
    )
    config = Config(
        target=TargetConfig(kind="fake", base_url="fake://demo"),
        inputs=InputsConfig(assets=assets_path, links=links_path),
        limits=LimitsConfig(pace=options.rate, concurrency=32, max_elapsed_s=60.0),
        output=OutputConfig(results=folder / "results.jsonl"),
        fake={
            "latency_s": options.latency_s,
            "jitter_s": options.latency_s / 2,
            "transient_rate": options.faults,
            "seed": 7,
            "token_lifetime_s": 5.0,
        },
    )
    return run_job(config)
