"""Run simulated PnP devices against a server: ``python3 -m simulator --url http://127.0.0.1:8080 -n 10``."""

from __future__ import annotations

import threading
import time

import click

from simulator.device import SimulatedDevice


@click.command()
@click.option("--url", required=True, help="PnP server base URL, e.g. http://127.0.0.1:8080")
@click.option("-n", "--devices", default=1, show_default=True, help="number of devices")
@click.option("--pid", default="C1131-8PWB", show_default=True)
@click.option("--version", "version", default="17.9.4a", show_default=True, help="running version")
@click.option("--serial-prefix", default="SIM", show_default=True)
@click.option("--timeout", default=600.0, show_default=True, help="seconds to wait for FINISHED")
@click.option("--time-scale", default=1.0, show_default=True, help="multiply server backoffs by this")
def main(url, devices, pid, version, serial_prefix, timeout, time_scale):
    """Boot N factory-fresh devices and poll until each finishes (or the timeout)."""
    sims = [SimulatedDevice(url, f"{serial_prefix}{i:05d}", pid=pid, version=version,
                            time_scale=time_scale, max_sleep=max(1.0, 60 * time_scale))
            for i in range(devices)]
    results: dict[str, bool] = {}
    start = time.monotonic()

    def drive(sim: SimulatedDevice) -> None:
        results[sim.serial] = sim.run(timeout=timeout)

    threads = [threading.Thread(target=drive, args=(s,), daemon=True) for s in sims]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = sum(results.values())
    for sim in sims:
        state = "FINISHED" if results[sim.serial] else f"not finished ({sim.last_backoff_reason})"
        click.echo(f"{sim.serial} {sim.version:<10} {state}")
    click.echo(f"{done}/{devices} finished in {time.monotonic() - start:.1f} s")
    raise SystemExit(0 if done == devices else 1)


if __name__ == "__main__":
    main()
