"""A simulated IOS-XE PnP agent that talks HTTP to a PnP server.

It keeps its own device state (running version, boot mode, config-register,
bootflash files and free space, running and startup config, EEM applets,
guestshell) and executes what the server asks: it downloads files for real
over HTTP (streamed, md5 verified, never held in memory), merges day-0
configs, runs EEM applets, reloads after image-install and comes back with the
``<reason><reload>`` block, and runs the guestshell python script.

Messages are built from the real captures in ``simulator/messages/``
(CSR1000V 17.3.4a work-request and device-info), with UDI, correlator and
values rewritten; services without a public capture (cli-exec, cli-config,
file-transfer, image-install) follow the XSD shapes of
docs/protocol.md §8.

Failures can be injected with ``Faults``. The simulator is independent of
the server code on purpose: it parses the server's XML itself.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import requests
import xmltodict

MESSAGES = Path(__file__).resolve().parent / "messages"
WR_FIXTURE = "wr_csr1000v_iosxe-17.3.4a_reload-reason.xml"
DEVICE_INFO_FIXTURE = "resp_device-info-all_csr1000v_iosxe-17.3.4a.xml"
FAULT_FIXTURE = "resp_fault_reconstructed.xml"
SMALL_FILE = 1024 * 1024  # files up to this size are kept (scripts, configs)
_counter = itertools.count(1)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(elem, *path):
    for name in path:
        if elem is None:
            return None
        elem = next((c for c in elem if _local(c.tag) == name), None)
    return elem


def _text(elem, *path) -> str:
    found = _find(elem, *path)
    return (found.text or "").strip() if found is not None else ""


def image_version(file_name: str) -> str | None:
    """``c1100-universalk9.17.12.03a.SPA.bin`` → ``17.12.3a`` (what IOS-XE then reports)."""
    m = re.search(r"(?<!\d)(\d{2})\.(\d{1,2})\.(\d{1,2})([a-z]*\d*)(?=\.)", file_name)
    if not m:
        return None
    return f"{int(m.group(1))}.{int(m.group(2))}.{int(m.group(3))}{m.group(4)}"


@dataclass
class Faults:
    """Failures to inject; counters go down as they are used.

    ``transfer_errors``: file-transfers that fail with 1702. ``install_errors``:
    image-installs that fail with 1829. ``faults``: services answered with a
    fault (no correlator). ``silent_reload``: image-install acknowledged but the
    new image does not boot (device comes back on the old version).
    ``early_poll``: after image-install, poll once before reloading.
    ``reject_cli``: cli-config lines the parser rejects. ``script_fails``:
    the guestshell script raises. ``drop_responses``: the next n work-responses are
    lost after the device acted on the job; ``lose_response``: the same for the next n
    responses of a service (``{"image-install": 1}``).

    Faults of the transport and of the device's memory of events:
    ``no_reload_notice``: after a reload the first work-request carries no
    ``<reason><reload>`` (the notice met a restart, or a proxy dropped it).
    ``corrupt_downloads``: the first n image downloads arrive damaged (the md5 check
    fails with 1816, the file is discarded). ``duplicate_requests``: the next n
    work-requests are sent ``copies`` times at once (same correlator; the device acts on
    the first reply carrying a job); ``duplicate_responses`` the same for work-responses.
    ``long_values``: device-info reports a 76-character
    versionString and a free space of 10^20 bytes, and failures carry a 100 kB
    errorMessage.
    """

    transfer_errors: int = 0
    install_errors: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    silent_reload: bool = False
    early_poll: bool = False
    reject_cli: set[str] = field(default_factory=set)
    script_fails: bool = False
    drop_responses: int = 0
    lose_response: dict[str, int] = field(default_factory=dict)
    no_reload_notice: bool = False
    corrupt_downloads: int = 0
    duplicate_requests: int = 0
    duplicate_responses: int = 0
    copies: int = 3
    long_values: bool = False


@dataclass
class FileEntry:
    """A file on the simulated bootflash; ``content`` only for small files."""

    size: int
    md5: str
    content: bytes | None = None


class SimulatedDevice:
    """One simulated ISR1k (or any IOS-XE PID) polling a PnP server at ``base_url``.

    ``verify`` is passed to requests for an ``https://`` base_url: a CA bundle path
    (the trustpool the device got from option 43 T), True or False. ``download_rate``
    limits downloads to that many bytes per second (a WAN link), 0 = no limit.
    """

    def __init__(self, base_url: str, serial: str, pid: str = "C1131-8PWB", vid: str = "V01",
                 version: str = "17.9.4a", image_file: str = "c1100-universalk9.17.09.04a.SPA.bin",
                 bootflash_size: int = 7_000_000_000, bootflash_used: int = 1_200_000_000,
                 config_register: str = "0x2142", faults: Faults | None = None,
                 reload_seconds: float = 0.5, max_sleep: float = 2.0, time_scale: float = 1.0,
                 http_timeout: float = 60.0, verify: bool | str = True,
                 download_rate: float = 0.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.serial, self.pid, self.vid = serial, pid, vid
        self.udi = f"PID:{pid},VID:{vid},SN:{serial}"
        self.version, self.image_file = version, image_file
        self.boot_mode = "install" if image_file.endswith("packages.conf") else "bundle"
        self.bootflash_size, self.bootflash_used = bootflash_size, bootflash_used
        self.config_register, self.config_register_next = config_register, ""
        self.faults = faults or Faults()
        self.reload_seconds, self.max_sleep, self.time_scale = reload_seconds, max_sleep, time_scale
        self.http = requests.Session()
        self.http.trust_env = False  # never a proxy: the server is on loopback
        self.http.verify = verify  # https:// base_url: True (system CAs) or a CA bundle path
        self.http_timeout = http_timeout
        self.download_rate = download_rate  # bytes per second of a download; 0 = as fast as it comes
        self.files: dict[str, FileEntry] = {}
        self.running_config: list[str] = []
        self.startup_config: list[str] = []
        self.applets: dict[str, list[str]] = {}
        self.guestshell: str | None = None  # None, DEPLOYED, RUNNING
        self.reload_reason: tuple[str, str] | None = ("factory-reset", "PnP Service Info 2408")
        self.pending_reload: str | None = None  # image to boot at the next reload
        self.downloads: dict[str, int] = {}  # completed downloads per URL
        self.download_starts: dict[str, int] = {}  # downloads begun per URL (cut ones too)
        self.log: list[str] = []
        self.script_outputs: list[str] = []
        self.last_backoff_reason = ""
        self.stop = threading.Event()

    # --- protocol messages -----------------------------------------------------------------
    def _correlator(self) -> str:
        return f"CiscoPnP-1.0-R33.200930-I1-P592-T{next(_counter)}-2"

    def work_request_xml(self, correlator: str) -> str:
        """The captured CSR1000V work-request with this device's UDI and correlator.

        The ``<reason>`` block is kept only on the first request after a boot.
        """
        text = (MESSAGES / WR_FIXTURE).read_text()
        text = text.replace("PID:CSR1000V,VID:V00,SN:99CWJ5DOLWQ", _attr(self.udi))
        text = text.replace("CiscoPnP-1.0-R33.200930-I1-P592-T43891-2", correlator)
        if self.reload_reason is None:
            text = re.sub(r"\s*<reason>.*?</reason>", "", text, flags=re.S)
        else:
            message, code = self.reload_reason
            text = text.replace("<message>factory-reset</message>", f"<message>{message}</message>")
            text = text.replace("<code>PnP Service Info 2408</code>", f"<code>{code}</code>")
        return text

    def device_info_xml(self, correlator: str) -> str:
        """The captured CSR1000V device-info response with this device's values."""
        text = (MESSAGES / DEVICE_INFO_FIXTURE).read_text()
        text = text.replace("PID:CSR1000V,VID:V00,SN:95HUSMATW2U", _attr(self.udi))
        text = text.replace("CiscoPnP-1.0-R33.200930-I1-P592-T47132-2", correlator)
        version = self.version
        if self.faults.long_values:
            version = f"{self.version} " + "x" * (75 - len(self.version))  # 76 characters
        text = text.replace("<versionString>17.3.4a</versionString>",
                            f"<versionString>{_esc(version)}</versionString>")
        text = text.replace("<imageFile>bootflash:packages.conf</imageFile>",
                            f"<imageFile>bootflash:{_esc(self.image_file)}</imageFile>")
        text = text.replace("<configReg>0x2102</configReg>",
                            f"<configReg>{self.config_register}</configReg>")
        nxt = f"<configRegNext>{self.config_register_next}</configRegNext>" \
            if self.config_register_next else "<configRegNext />"
        text = text.replace("<configRegNext />", nxt)
        text = text.replace("<platformName>CSR1000V</platformName>",
                            f"<platformName>{_esc(self.pid)}</platformName>")
        free = 10**20 if self.faults.long_values else self.bootflash_free
        text = text.replace('size="6286540800" freespace="5438058496"',
                            f'size="{self.bootflash_size}" freespace="{free}"')
        text = text.replace("<boardId>95HUSMATW2U</boardId>", f"<boardId>{_esc(self.serial)}</boardId>")
        return text

    def _response(self, service: str, correlator: str, success: bool, body: dict | None = None,
                  error: tuple[str, str] | None = None) -> str:
        inner: dict = {"@xmlns": f"urn:cisco:pnp:{service}", "@correlator": correlator,
                       "@success": "1" if success else "0"}
        inner.update(body or {})
        if error:
            message = error[1] + (" " + "y" * 100_000 if self.faults.long_values else "")
            inner["errorInfo"] = {"errorSeverity": "ERROR", "errorCode": error[0],
                                  "errorMessage": message}
        doc = {"pnp": {"@xmlns": "urn:cisco:pnp", "@version": "1.0", "@udi": self.udi,
                       "response": inner}}
        return xmltodict.unparse(doc, full_document=False)

    def _fault_xml(self) -> str:
        text = (MESSAGES / FAULT_FIXTURE).read_text()
        return text.replace("PID:CSR1000V,VID:V00,SN:99CWJ5DOLWQ", _attr(self.udi))

    # --- state -------------------------------------------------------------------------------
    @property
    def bootflash_free(self) -> int:
        return self.bootflash_size - self.bootflash_used - sum(f.size for f in self.files.values())

    def note(self, message: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {message}")

    def _download(self, url: str) -> tuple[int, str, bytes | None]:
        """Stream ``url``; returns (size, md5, content if small). Raises on HTTP errors."""
        digest, size, chunks = hashlib.md5(usedforsecurity=False), 0, []
        with self.http.get(url, stream=True, timeout=self.http_timeout) as resp:
            resp.raise_for_status()
            self.download_starts[url] = self.download_starts.get(url, 0) + 1
            started = time.monotonic()
            for chunk in resp.iter_content(1 << 20):
                digest.update(chunk)
                size += len(chunk)
                if self.download_rate:
                    ahead = size / self.download_rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
                if size <= SMALL_FILE:
                    chunks.append(chunk)
        self.downloads[url] = self.downloads.get(url, 0) + 1
        return size, digest.hexdigest(), b"".join(chunks) if size <= SMALL_FILE else None

    def reload(self) -> None:
        """Reload: boot the pending image (unless the fault says it does not take)."""
        self.note("reloading")
        time.sleep(self.reload_seconds)
        if self.pending_reload and not self.faults.silent_reload:
            self.image_file = self.pending_reload
            self.version = image_version(self.pending_reload) or self.version
            self.boot_mode = "bundle"
        self.pending_reload = None
        if self.config_register_next:
            self.config_register, self.config_register_next = self.config_register_next, ""
        self.running_config = list(self.startup_config)
        self.reload_reason = ("reload command", "PnP Service Info 2408")
        if self.faults.no_reload_notice:
            self.reload_reason = None
            self.note("reloaded; the reload notice is lost")

    # --- jobs ----------------------------------------------------------------------------------
    def execute(self, request) -> tuple[str, bool]:
        """Run one server ``<request>``; returns (response XML, reload afterwards)."""
        service = request.tag[1:].split("}")[0].rsplit(":", 1)[-1] if request.tag.startswith("{") else ""
        correlator = request.get("correlator", "")
        if self.faults.faults.get(service, 0) > 0:
            self.faults.faults[service] -= 1
            self.note(f"fault on {service}")
            return self._fault_xml(), False
        handler = getattr(self, "_do_" + service.replace("-", "_"), None)
        if handler is None:
            return self._fault_xml(), False
        return handler(request, correlator)

    def _do_device_info(self, request, correlator):
        return self.device_info_xml(correlator), False

    def _do_cli_config(self, request, correlator):
        cmds = [(c.text or "").strip() for c in request.iter() if _local(c.tag) == "cmd"]
        entries, ok = [], True
        for n, cmd in enumerate(cmds, 1):
            entry = {"@lineNumber": str(n), "@cliString": cmd}
            if cmd in self.faults.reject_cli:
                entry["failure"] = {"@errorType": "SYNTAX", "@errorCode": "INVALID_INPUT"}
                entry["text"] = "% Invalid input detected at '^' marker."
                ok = False
            else:
                entry["success"] = {"@change": "CHANGE", "@mode": "IMMEDIATE"}
                m = re.match(r"config-register\s+(0x[0-9a-fA-F]+)$", cmd)
                if m:
                    self.config_register_next = m.group(1)
                self.running_config.append(cmd)
            entries.append(entry)
        self.note(f"cli-config {cmds} ok={ok}")
        return self._response("cli-config", correlator, True, {"resultEntry": entries}), False

    def _do_cli_exec(self, request, correlator):
        cmd = _text(request, "execCLI", "cmd")
        output = self.exec_command(cmd)
        self.note(f"cli-exec {cmd!r}")
        body = {"execLog": {"dialogueLog": {"sent": cmd, "received": {"text": output}}}}
        return self._response("cli-exec", correlator, True, body), False

    def exec_command(self, cmd: str) -> str:
        """Output of an exec command, with its effect on the device."""
        if cmd in ("write memory", "copy running-config startup-config"):
            self.startup_config = list(self.running_config)
            return "Building configuration...\n[OK]"
        if cmd == "show app-hosting list":
            if self.guestshell is None:
                return "No App found"
            return ("App id                                   State\n"
                    "---------------------------------------------------------\n"
                    f"guestshell                               {self.guestshell}")
        m = re.match(r"dir (\w+):(\S+)$", cmd)
        if m:
            path = m.group(2).lstrip("/")
            entry = self.files.get(path)
            if entry is None:
                return f"%Error opening {m.group(1)}:/{path} (No such file or directory)"
            return (f"Directory of {m.group(1)}:/{path}\n\n"
                    f"   12  -rw-  {entry.size:>14}  Dec 1 2026 09:00:00 +00:00  {path.rsplit('/', 1)[-1]}\n\n"
                    f"{self.bootflash_size} bytes total ({self.bootflash_free} bytes free)")
        m = re.match(r"event manager run (\S+)$", cmd)
        if m:
            actions = self.applets.get(m.group(1))
            if actions is None:
                return f"EEM policy {m.group(1)} not registered with event none Event Detector"
            return "\n".join(self.exec_command(a) for a in actions if a not in ("enable",))
        m = re.match(r"app-hosting install appid guestshell package (\S+)$", cmd)
        if m:
            path = m.group(1).split(":", 1)[-1].lstrip("/")
            if path not in self.files:
                return f"% Error: package {m.group(1)} not found"
            self.guestshell = self.guestshell or "DEPLOYED"
            return f"Installing package '{m.group(1)}' for 'guestshell'."
        if cmd == "guestshell enable":
            if self.guestshell is None:
                return "% Error: guestshell is not installed"
            self.guestshell = "RUNNING"
            return "Guestshell enabled successfully"
        m = re.match(r"guestshell run python3? (\S+)$", cmd)
        if m:
            return self._run_script(m.group(1))
        return f"{cmd}\n     ^\n% Invalid input detected at '^' marker."

    def _run_script(self, path: str) -> str:
        if self.guestshell != "RUNNING":
            return "% Error: guestshell is not running"
        rel = path.replace("/bootflash/", "", 1).replace("/flash/", "", 1)
        entry = self.files.get(rel)
        if entry is None or entry.content is None:
            return f"python3: can't open file '{path}': [Errno 2] No such file or directory"
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / Path(rel).name
            code = entry.content
            if self.faults.script_fails:
                code = b"raise RuntimeError('injected failure')\n"
            script.write_bytes(code)
            proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                                  timeout=60, cwd=tmp)
        output = proc.stdout + proc.stderr
        self.script_outputs.append(output)
        return output

    def _transfer(self, source_url: str, destination: str) -> tuple[FileEntry | None, str]:
        size, md5, content = self._download(source_url)
        if size > self.bootflash_free:
            return None, "No space on destination file system"
        path = destination.split(":", 1)[-1].lstrip("/")
        entry = FileEntry(size, md5, content)
        self.files[path] = entry
        return entry, ""

    def _do_file_transfer(self, request, correlator):
        src = _text(request, "fileTransfer", "copy", "source", "location")
        dst = _text(request, "fileTransfer", "copy", "destination", "location")
        if self.faults.transfer_errors > 0:
            self.faults.transfer_errors -= 1
            return self._response("file-transfer", correlator, False,
                                  error=("PnP Service Error 1702", f"File copy failed: {src}")), False
        try:
            entry, problem = self._transfer(src, dst)
        except requests.RequestException as exc:
            return self._response("file-transfer", correlator, False,
                                  error=("PnP Service Error 1702", f"File copy failed: {exc}")), False
        if entry is None:
            return self._response("file-transfer", correlator, False,
                                  error=("PnP Service Error 1701", problem)), False
        self.note(f"file-transfer {src} -> {dst}")
        return self._response("file-transfer", correlator, True), False

    def _do_image_install(self, request, correlator):
        src = _text(request, "image", "copy", "source", "location")
        checksum = _text(request, "image", "copy", "source", "checksum").lower()
        dst = _text(request, "image", "copy", "destination", "location") or \
            "bootflash:" + src.rsplit("/", 1)[-1]
        if self.faults.install_errors > 0:
            self.faults.install_errors -= 1
            return self._response("image-install", correlator, False,
                                  error=("PnP Service Error 1829", "Image copy failed")), False
        try:
            size, md5, _ = self._download(src)
        except requests.HTTPError as exc:
            return self._response("image-install", correlator, False,
                                  error=("PnP Service Error 1803", f"Source not found: {exc}")), False
        except requests.RequestException as exc:  # connection lost mid-download, timeout
            return self._response("image-install", correlator, False,
                                  error=("PnP Service Error 1829", f"Image copy failed: {exc}")), False
        if self.faults.corrupt_downloads > 0:
            self.faults.corrupt_downloads -= 1
            md5 = "0" * 32
            self.note("image download damaged")
        if checksum and md5 != checksum:
            return self._response("image-install", correlator, False,
                                  error=("PnP Service Error 1816", "Image signature verify failed")), False
        if size > self.bootflash_free:
            return self._response("image-install", correlator, False,
                                  error=("PnP Service Error 1825", "No space on destination file system")), False
        path = dst.split(":", 1)[-1].lstrip("/")
        self.files[path] = FileEntry(size, md5)
        self.pending_reload = path
        self.note(f"image-install {src} ({size} bytes)")
        reload_requested = _find(request, "reload") is not None
        return self._response("image-install", correlator, True), reload_requested

    def _do_config_upgrade(self, request, correlator):
        src = _text(request, "config", "copy", "source", "location")
        checksum = _text(request, "config", "copy", "source", "checksum").lower()
        try:
            size, md5, content = self._download(src)
        except requests.RequestException as exc:
            return self._response("config-upgrade", correlator, False,
                                  error=("PnP Service Error 1404", f"Config copy failed: {exc}")), False
        if checksum and checksum != md5:
            return self._response("config-upgrade", correlator, False,
                                  error=("PnP Service Error 1403", "Config hash check failed")), False
        self.merge_config((content or b"").decode("utf-8", "replace"))
        self.note(f"config-upgrade {src}")
        return self._response("config-upgrade", correlator, True), False

    def merge_config(self, text: str) -> None:
        """Merge config lines into running-config; learn EEM applets."""
        applet = None
        for line in text.splitlines():
            if not line.strip() or line.lstrip().startswith("!"):
                applet = None if not line.startswith(" ") else applet
                continue
            self.running_config.append(line.rstrip())
            m = re.match(r"event manager applet (\S+)", line)
            if m:
                applet = m.group(1)
                self.applets[applet] = []
                continue
            if applet and line.startswith(" "):
                a = re.match(r'\s*action \S+ cli command "(.*)"', line)
                if a:
                    self.applets[applet].append(a.group(1))
            elif not line.startswith(" "):
                applet = None

    def _do_backoff(self, request, correlator):
        reason = _text(request, "backoff", "reason")
        after = _find(request, "backoff", "callbackAfter")
        seconds = 0
        if after is not None:
            seconds = (int(_text(after, "hours") or 0) * 3600 + int(_text(after, "minutes") or 0) * 60
                       + int(_text(after, "seconds") or 0))
        self.last_backoff_reason = reason
        self._backoff_seconds = seconds
        return self._response("backoff", correlator, True), False

    # --- the polling loop ---------------------------------------------------------------------
    def poll_once(self) -> float:
        """One WORK-REQUEST and, for a job, its WORK-RESPONSE. Returns seconds to sleep."""
        correlator = self._correlator()
        self._backoff_seconds = None
        body = self.work_request_xml(correlator)
        if self.faults.duplicate_requests > 0:
            self.faults.duplicate_requests -= 1
            resp = self._post_copies(body, "WORK-REQUEST")
        else:
            resp = self.http.post(f"{self.base_url}/pnp/WORK-REQUEST", data=body,
                                  headers={"Content-Type": "text/xml"}, timeout=self.http_timeout)
        self.reload_reason = None
        if resp.status_code != 200 or not resp.text.strip():
            self.note(f"WORK-REQUEST got {resp.status_code} {resp.text[:80]!r}")
            return 1.0
        root = ET.fromstring(resp.text)
        request = _find(root, "request")
        if request is None:  # a bye or an info: poll again soon
            return 0.2
        answer, reload_after = self.execute(request)
        service = request.tag[1:].split("}")[0].rsplit(":", 1)[-1] if request.tag.startswith("{") else ""
        if self.faults.lose_response.get(service, 0) > 0:
            self.faults.lose_response[service] -= 1
            self.note(f"lost the {service} work-response")
            if reload_after:
                self.reload()
                return 0.0
            return 0.1
        if self.faults.drop_responses > 0 and not request.tag.endswith("backoff}request"):
            self.faults.drop_responses -= 1
            self.note("dropped a work-response")
            return 0.1
        try:
            if self.faults.duplicate_responses > 0:
                self.faults.duplicate_responses -= 1
                self._post_copies(answer, "WORK-RESPONSE")
            else:
                self.http.post(f"{self.base_url}/pnp/WORK-RESPONSE", data=answer,
                               headers={"Content-Type": "text/xml"}, timeout=self.http_timeout)
        except requests.RequestException as exc:
            if not reload_after:
                raise
            # Like IOS-XE: a job with <reload> reloads the device whether or not the
            # server took the work-response.
            self.note(f"work-response lost ({exc.__class__.__name__}); reloading anyway")
        else:
            if reload_after and self.faults.early_poll:
                self.faults.early_poll = False
                self.poll_once()
        if reload_after:
            self.reload()
            return 0.0
        if self._backoff_seconds is not None:
            return min(self._backoff_seconds * self.time_scale, self.max_sleep)
        return 0.05

    def _post_copies(self, body: str, endpoint: str) -> requests.Response:
        """The same message ``copies`` times at once to /pnp/<endpoint>; the first reply
        with a job wins (any reply for a work-response). Raises the first error of a copy."""
        replies: list[requests.Response] = []
        errors: list[Exception] = []
        lock = threading.Lock()

        def post() -> None:
            try:
                with requests.Session() as http:
                    http.trust_env, http.verify = False, self.http.verify  # never a proxy
                    reply = http.post(f"{self.base_url}/pnp/{endpoint}", data=body,
                                      headers={"Content-Type": "text/xml"}, timeout=self.http_timeout)
            except requests.RequestException as exc:
                with lock:
                    errors.append(exc)
                return
            with lock:
                replies.append(reply)

        threads = [threading.Thread(target=post) for _ in range(max(2, self.faults.copies))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.note(f"sent {len(threads)} copies to {endpoint}")
        if not replies:
            raise errors[0]
        with_job = [r for r in replies if r.status_code == 200 and "urn:cisco:pnp:backoff" not in r.text
                    and "<request" in r.text]
        return (with_job or replies)[0]

    @property
    def finished(self) -> bool:
        """The server said provisioning is finished."""
        return "finished" in self.last_backoff_reason

    @property
    def parked(self) -> bool:
        """The server parked the device (error or no space): it waits for an operator or
        for its automatic retry."""
        reason = self.last_backoff_reason
        return "waiting for an operator" in reason or "automatic retry" in reason

    def run(self, timeout: float = 120.0, until=None) -> bool:
        """Poll until ``until(self)`` (default: finished) or timeout; returns whether it was met."""
        until = until or (lambda d: d.finished)
        deadline = time.monotonic() + timeout
        requests_sent = 0
        while time.monotonic() < deadline and not self.stop.is_set():
            try:
                sleep = self.poll_once()
            except (requests.RequestException, ET.ParseError) as exc:
                self.note(f"poll error: {exc.__class__.__name__}: {exc}")
                sleep = 0.5
            requests_sent += 1
            if until(self):
                return True
            self.stop.wait(sleep)
        return False


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _esc(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
