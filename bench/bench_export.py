"""Time zone-file export of a 1M-RR Kubernetes-like zone: selection + sort + render, and
the atomic write. Prints figures only (PERFORMANCE.md goal: <= 1.5 s for 1M records).

    python -m bench.bench_export [SERVICES] [PODS] [RUNS]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from bench._zone import k8s_records, median_seconds, rss_mb
from zonegen import zonefile
from zonegen.model import ZoneConfig


def main() -> None:
    services = int(sys.argv[1]) if len(sys.argv) > 1 else 25_000
    pods = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    t = time.perf_counter()
    records = k8s_records(services, pods)
    n = len(records)
    print(f"records: {n:,} built in {time.perf_counter() - t:.2f} s; peak RSS {rss_mb():.0f} MB")
    config = ZoneConfig()
    med, text = median_seconds(runs, lambda: "".join(zonefile.render(records, config, 1)))
    size = len(text)
    del text
    print(f"render (select+sort+format+join): median {med:.3f} s of {runs} "
          f"({n / med / 1e3:.0f}k records/s), {size / 1e6:.1f} MB text; "
          f"peak RSS {rss_mb():.0f} MB")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "cluster.local.zone")
        med, _ = median_seconds(runs, lambda: zonefile.write(
            path, zonefile.render(records, config, 1)))
        print(f"render + atomic write (fsync): median {med:.3f} s ({n / med / 1e3:.0f}k "
              f"records/s), {os.path.getsize(path) / 1e6:.1f} MB; peak RSS {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
