"""The Aspose emulator speaks the v5.0 wire protocol of docs/aspose-cloud-v5.md."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from imaging import render_lines
from ocrwatch.engines import EngineCache
from ocrwatch.settings.model import load_settings
from ocrwatch.testing.aspose_emulator import AsposeEmulator, Endpoint, Fault

TOKEN_TYPES = ("urlencoded", "multipart")


@pytest.fixture(scope="module")
def local_engines() -> Iterator[EngineCache]:
    """Local engines shared by the module's emulators."""
    cache = EngineCache(load_settings())
    yield cache
    cache.close()


@pytest.fixture
def emu(local_engines: EngineCache) -> Iterator[AsposeEmulator]:
    """A fresh emulator."""
    with AsposeEmulator(engines=local_engines, retry_after=3) as e:
        yield e


class Client:
    """A raw HTTP client (http.client): what goes on the wire is what the test says."""

    def __init__(self, base_url: str) -> None:
        url = urllib.parse.urlsplit(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.token: str | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            hdrs = dict(headers or {})
            if self.token and "Authorization" not in hdrs:
                hdrs["Authorization"] = f"Bearer {self.token}"
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def login(self, emu: AsposeEmulator, *, form: str = "urlencoded") -> int:
        fields = {
            "grant_type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
        }
        if form == "multipart":
            boundary = "xYzBoundary"
            parts = [
                f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                for k, v in fields.items()
            ]
            body = ("".join(parts) + f"--{boundary}--\r\n").encode()
            ctype = f"multipart/form-data; boundary={boundary}"
        else:
            body = urllib.parse.urlencode(fields).encode()
            ctype = "application/x-www-form-urlencoded"
        status, _, raw = self.request("POST", "/connect/token", body, {"Content-Type": ctype})
        if status == 200:
            self.token = json.loads(raw)["access_token"]
        return status

    def submit(self, resource: str = "RecognizeImage", **settings: Any) -> tuple[int, str]:
        png = io.BytesIO()
        render_lines(["Hello emulator"]).save(png, format="PNG")
        doc = {
            "image": base64.b64encode(png.getvalue()).decode(),
            "settings": {"language": "English", "resultType": "Text", **settings},
        }
        status, headers, raw = self.request(
            "POST",
            f"/v5.0/ocr/{resource}",
            json.dumps(doc).encode(),
            {"Content-Type": "application/json", "Accept": "text/plain"},
        )
        assert status != 200 or headers["content-type"].startswith("text/plain")
        return status, raw.decode()

    def get_json(self, path: str) -> tuple[int, dict[str, str], Any]:
        status, headers, raw = self.request("GET", path, None, {"Accept": "application/json"})
        return status, headers, json.loads(raw) if raw else None


class TestProtocol:
    """Endpoints, content types, enums and auth as the spec says."""

    @pytest.mark.parametrize("form", TOKEN_TYPES)
    def test_token_forms(self, emu: AsposeEmulator, form: str) -> None:
        """Both urlencoded and multipart token requests get a Bearer token."""
        client = Client(emu.base_url)
        assert client.login(emu, form=form) == 200
        assert client.token in emu.tokens

    def test_token_reply_shape(self, emu: AsposeEmulator) -> None:
        """The token reply has access_token, expires_in and token_type."""
        body = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": emu.client_id,
                "client_secret": emu.client_secret,
            }
        ).encode()
        status, headers, raw = Client(emu.base_url).request(
            "POST",
            "/connect/token",
            body,
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        doc = json.loads(raw)
        assert status == 200 and headers["content-type"].startswith("application/json")
        assert doc["token_type"] == "Bearer" and doc["expires_in"] == 3600

    def test_bad_credentials(self, emu: AsposeEmulator) -> None:
        """Wrong credentials get 400 invalid_client."""
        form = {"grant_type": "client_credentials", "client_id": emu.client_id}
        body = urllib.parse.urlencode({**form, "client_secret": "wrong"}).encode()
        status, _, raw = Client(emu.base_url).request(
            "POST", "/connect/token", body, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert status == 400 and json.loads(raw) == {"error": "invalid_client"}

    def test_missing_token_is_401_problem(self, emu: AsposeEmulator) -> None:
        """API calls without a valid Bearer token get a 401 ProblemDetails."""
        status, _, doc = Client(emu.base_url).get_json("/v5.0/ocr/RecognizeImage?id=x")
        assert status == 401
        assert {"type", "title", "status", "detail", "instance"} <= set(doc)
        assert doc["title"] == "Unauthorized" and doc["status"] == 401

    def test_task_life_cycle(self, emu: AsposeEmulator) -> None:
        """POST gives a text/plain id; GET Pending then Completed with base64 text."""
        emu.faults.set(pending_polls=1)
        client = Client(emu.base_url)
        client.login(emu)
        status, task_id = client.submit()
        assert status == 200 and len(task_id) == 36
        status, headers, doc = client.get_json(f"/v5.0/ocr/RecognizeImage?id={task_id}")
        assert headers["content-type"].startswith("application/json")
        assert (doc["taskStatus"], doc["responseStatusCode"], doc["results"]) == (
            "Pending",
            "NotReady",
            None,
        )
        status, _, doc = client.get_json(f"/v5.0/ocr/RecognizeImage?id={task_id}")
        assert (doc["taskStatus"], doc["responseStatusCode"]) == ("Completed", "Ok")
        assert doc["id"] == task_id and doc["error"] is None
        text = base64.b64decode(doc["results"][0]["data"]).decode()
        assert doc["results"][0]["type"] == "Text"
        assert "Hello emulator" in text

    def test_status_endpoint_and_case_insensitive_paths(self, emu: AsposeEmulator) -> None:
        """GetTaskStatus has no results; paths match whatever their case."""
        client = Client(emu.base_url)
        client.login(emu)
        _, task_id = client.submit()
        status, _, doc = client.get_json(f"/V5.0/OCR/utilities/gettaskstatus?id={task_id}")
        assert status == 200
        assert doc["taskStatus"] == "Completed" and doc["results"] is None
        _, _, doc = client.get_json(f"/v5.0/ocr/recognizeimage?id={task_id}")
        assert doc["results"]
        assert emu.count("GET", "GetTaskStatus") == 1

    def test_unknown_id_and_cancel(self, emu: AsposeEmulator) -> None:
        """Unknown ids are NotExist/TaskNotFound (200); DELETE cancels (200, empty)."""
        client = Client(emu.base_url)
        client.login(emu)
        _, _, doc = client.get_json("/v5.0/ocr/RecognizeImage?id=nope")
        assert (doc["taskStatus"], doc["responseStatusCode"]) == ("NotExist", "TaskNotFound")
        _, task_id = client.submit()
        status, _, raw = client.request("DELETE", f"/v5.0/ocr/RecognizeImage?id={task_id}")
        assert status == 200 and raw == b""
        assert emu.cancelled == [task_id]
        _, _, doc = client.get_json(f"/v5.0/ocr/RecognizeImage?id={task_id}")
        assert doc["taskStatus"] == "NotExist"

    def test_invalid_enum_is_400(self, emu: AsposeEmulator) -> None:
        """Settings outside the spec's enums are rejected."""
        client = Client(emu.base_url)
        client.login(emu)
        assert client.submit(language="Klingon")[0] == 400
        assert client.submit(dsrMode="Magic")[0] == 400
        assert client.submit(resultType="Docx")[0] == 400
        assert client.submit(language="HWT_ENG", dsrMode="LineDetector")[0] == 200

    def test_task_error(self, emu: AsposeEmulator) -> None:
        """The task_error knob ends tasks in Error with the message."""
        emu.faults.set(task_error="boom")
        client = Client(emu.base_url)
        client.login(emu)
        _, task_id = client.submit()
        _, _, doc = client.get_json(f"/v5.0/ocr/RecognizeImage?id={task_id}")
        assert doc["taskStatus"] == "Error" and doc["error"]["messages"] == ["boom"]

    def test_enum_values_in_replies_are_from_the_spec(self, emu: AsposeEmulator) -> None:
        """Every status the emulator sends parses with the SDK's enums."""
        from aspose_ocr_cloud.models.ocr_response import OCRResponse

        emu.faults.set(pending_polls=3)
        client = Client(emu.base_url)
        client.login(emu)
        _, task_id = client.submit()
        for _ in range(4):
            _, _, doc = client.get_json(f"/v5.0/ocr/RecognizeImage?id={task_id}")
            OCRResponse.from_dict(doc)
        assert doc["taskStatus"] == "Completed"


class TestFaults:
    """Each fault knob answers as documented."""

    @pytest.mark.parametrize(
        ("fault", "status", "retry_after"),
        [
            (Fault.RATE_LIMIT, 429, "3"),
            (Fault.RATE_LIMIT_BARE, 429, None),
            (Fault.UNAVAILABLE, 503, "3"),
            (Fault.UNAVAILABLE_BARE, 503, None),
            (Fault.SERVER_ERROR, 500, None),
            (Fault.BAD_REQUEST, 400, None),
            (Fault.UNAUTHORIZED, 401, None),
            (Fault.FORBIDDEN, 403, None),
        ],
    )
    def test_http_faults(
        self, emu: AsposeEmulator, fault: Fault, status: int, retry_after: str | None
    ) -> None:
        """One-shot HTTP faults hit the next matching request only."""
        client = Client(emu.base_url)
        client.login(emu)
        emu.faults.inject(fault, endpoint=Endpoint.SUBMIT)
        got, headers, _ = client.request("POST", "/v5.0/ocr/RecognizeImage", b"{}")
        assert got == status
        assert headers.get("retry-after") == retry_after
        assert client.submit()[0] == 200

    def test_malformed_json_and_drop(self, emu: AsposeEmulator) -> None:
        """Malformed JSON is a 200 that does not parse; a drop closes without a reply."""
        client = Client(emu.base_url)
        emu.faults.inject(Fault.MALFORMED_JSON, endpoint=Endpoint.TOKEN)
        status, _, raw = client.request("POST", "/connect/token", b"")
        assert status == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(raw)
        emu.faults.inject(Fault.DROP)
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            client.request("POST", "/connect/token", b"")

    def test_token_max_calls(self, emu: AsposeEmulator) -> None:
        """A token is rejected after token_max_calls uses."""
        emu.faults.set(token_max_calls=1)
        client = Client(emu.base_url)
        client.login(emu)
        assert client.get_json("/v5.0/ocr/RecognizeImage?id=a")[0] == 200
        assert client.get_json("/v5.0/ocr/RecognizeImage?id=a")[0] == 401

    def test_fail_rate_is_seeded(self, local_engines: EngineCache) -> None:
        """A seeded random failure rate fails about that share, the same way each run."""

        def run() -> list[int]:
            with AsposeEmulator(engines=local_engines, fail_rate=0.3, seed=42) as emu:
                client = Client(emu.base_url)
                out = []
                for _ in range(40):
                    try:
                        out.append(client.request("GET", "/v5.0/ocr/RecognizeImage?id=a")[0])
                    except (http.client.HTTPException, ConnectionError):
                        out.append(-1)
                return out

        first, second = run(), run()
        assert first == second
        failures = sum(1 for s in first if s != 401)
        assert 4 <= failures <= 20

    def test_knobs_are_checked(self, emu: AsposeEmulator) -> None:
        """Unknown knob names are an error, not silently ignored."""
        with pytest.raises(TypeError):
            emu.faults.set(fail_rte=0.5)


class TestCommandLine:
    """``python -m ocrwatch.testing.aspose_emulator`` serves users."""

    @pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
    def test_runs_and_prints_base_url(self, signum: int) -> None:
        """It prints the base URL and credentials, serves tokens, and stops on SIGINT/TERM."""
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ocrwatch.testing.aspose_emulator",
                "--port",
                "0",
                "--fail-rate",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline() for _ in range(5)]
            base = lines[0].split()[-1]
            assert base.startswith("http://127.0.0.1:")
            assert "client_secret=emulator-secret" in lines[1]
            assert f"export OCRWATCH_ASPOSE__BASE_URL={base}\n" in lines
            emu = AsposeEmulator()  # only for the default credentials
            assert Client(base).login(emu) == 200
        finally:
            proc.send_signal(signum)
            deadline = time.monotonic() + 20
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
            _, err = proc.communicate()
        assert proc.returncode == 0, err
