"""The example's data: a CSV of orders it generates, reads and splits."""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["FIELDS", "count_rows", "generate_csv", "read_rows", "split_csv"]

FIELDS = ("order_id", "customer", "country", "amount_cents")
COUNTRIES = ("FR", "DE", "ES", "IT", "NL", "PL", "SE", "PT")


def generate_csv(
    path: Path, rows: int, *, seed: int = 7, on_progress: Callable[[int, int], None] | None = None
) -> Path:
    """Write ``rows`` random orders to ``path``; report every 1,000 rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(FIELDS)
        for number in range(1, rows + 1):
            writer.writerow(
                (
                    number,
                    f"customer-{rng.randrange(500)}",
                    rng.choice(COUNTRIES),
                    rng.randrange(100, 50_000),
                )
            )
            if on_progress is not None and (number % 1000 == 0 or number == rows):
                on_progress(number, rows)
    return path


def count_rows(path: Path) -> int:
    with path.open(encoding="utf-8") as file:
        return max(0, sum(1 for _ in file) - 1)


def read_rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        yield from csv.DictReader(file)


def split_csv(path: Path, chunks: int) -> list[Path]:
    """Split ``path`` into ``chunks`` files of about the same size."""
    rows = list(read_rows(path))
    size = -(-len(rows) // chunks)
    paths = []
    for index in range(chunks):
        part = path.with_name(f"{path.stem}.part{index:02d}.csv")
        with part.open("w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, FIELDS)
            writer.writeheader()
            writer.writerows(rows[index * size : (index + 1) * size])
        paths.append(part)
    return paths
