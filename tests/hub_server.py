"""A Hugging Face Hub on 127.0.0.1, for tests: the requests the real ``huggingface_hub`` client makes to create a model
repo, commit a folder (regular files inline, large ones through the LFS batch API), and list and download files.

    python -m tests.hub_server --port P --root DIR [--token T]

prints ``hub on http://127.0.0.1:P`` once it accepts connections. Point the client at it with ``HF_ENDPOINT`` (read
when ``huggingface_hub`` is imported) or ``endpoint=``. Why a server and not a fake ``HfApi``: a change in how the
client uploads (preupload, LFS, Xet) or downloads (ETag and commit headers) must fail our tests, not our users.

What it answers (the client's own URLs, huggingface_hub 2.x):
- ``POST /api/repos/create``; ``GET /api/whoami-v2``; ``POST /api/validate-yaml`` (a README.md's front matter and
  its ``model-index``, read by huggingface_hub's own parser);
- ``POST /api/models/{repo}/preupload/{rev}``: files of 10 kB or more go LFS, as on the Hub;
- ``POST /{repo}.git/info/lfs/objects/batch``, ``PUT /lfs-upload/{oid}``, ``POST /lfs-verify/{oid}``;
- ``POST /api/models/{repo}/commit/{rev}`` (NDJSON: header, file, lfsFile, deletedFile);
- ``GET /api/models/{repo}[/revision/{rev}]``, ``GET /api/models/{repo}/tree/{rev}``;
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}`` with ``ETag``, ``X-Repo-Commit`` and, for LFS files,
  ``X-Linked-Etag``/``X-Linked-Size``.
Xet is declined (``/api/models/{repo}/xet-*-token`` answers 501); the client's LFS path is what runs here
(``HF_HUB_DISABLE_XET=1``: huggingface_hub 2.x uploads through Xet whenever ``hf_xet`` is installed, with no
fallback). Writes need ``Authorization: Bearer <token>``; a wrong token is refused on every request, as the Hub does.
Each repo keeps its files (``DIR/repos/<user>/<name>/files``) and its commit list (``meta.json``); only the latest
commit (or ``main``) can be read.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

DEFAULT_TOKEN = "hf_loopback_test_token"
#: Files at least this large are stored through LFS (the Hub's rule is about 10 MB or binary; small here so that
#: tiny test models take both paths).
LFS_THRESHOLD = 10_000
REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
_LOCK = threading.Lock()


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


class Hub:
    """The repos and LFS objects under ``root``."""

    def __init__(self, root: Path, tokens: set[str]):
        self.root, self.tokens = Path(root), tokens
        (self.root / "lfs").mkdir(parents=True, exist_ok=True)

    def repo_dir(self, repo: str) -> Path:
        return self.root / "repos" / repo

    def meta(self, repo: str) -> dict:
        path = self.repo_dir(repo) / "meta.json"
        if not path.is_file():
            raise HubError(404, f"Repository {repo} not found", "RepoNotFound")
        return json.loads(path.read_text())

    def save_meta(self, repo: str, meta: dict) -> None:
        (self.repo_dir(repo) / "meta.json").write_text(json.dumps(meta, indent=1))

    def check_revision(self, meta: dict, revision: str) -> str:
        head = meta["commits"][-1]["oid"] if meta["commits"] else None
        if revision not in ("main", head) or head is None:
            raise HubError(404, f"Revision {revision} not found", "RevisionNotFound")
        return head

    def create(self, repo: str, private: bool) -> None:
        folder = self.repo_dir(repo)
        if (folder / "meta.json").is_file():
            raise HubError(409, "You already created this model repo", url=repo)
        (folder / "files").mkdir(parents=True, exist_ok=True)
        self.save_meta(repo, {"private": private, "commits": [], "files": {}})
        self.commit(repo, [], "initial commit")

    def commit(self, repo: str, lines: list[dict], summary: str) -> str:
        meta, files = self.meta(repo), self.repo_dir(repo) / "files"
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                content = base64.b64decode(value["content"])
                self._write(files, value["path"], content)
                meta["files"][value["path"]] = {"size": len(content), "lfs": None}
            elif key == "lfsFile":
                blob = self.root / "lfs" / value["oid"]
                if not blob.is_file():
                    raise HubError(400, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                self._write(files, value["path"], blob.read_bytes())
                meta["files"][value["path"]] = {"size": value["size"], "lfs": value["oid"]}
            elif key == "deletedFile":
                (files / value["path"]).unlink(missing_ok=True)
                meta["files"].pop(value["path"], None)
            elif key != "header":
                raise HubError(400, f"unsupported commit operation {key}")
        oid = hashlib.sha1(f"{repo}{len(meta['commits'])}{summary}{time.time_ns()}".encode()).hexdigest()
        meta["commits"].append({"oid": oid, "summary": summary})
        self.save_meta(repo, meta)
        return oid

    @staticmethod
    def _write(files: Path, path: str, content: bytes) -> None:
        target = (files / path).resolve()
        if files.resolve() not in target.parents:
            raise HubError(400, f"bad path {path}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def git_blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class Handler(BaseHTTPRequestHandler):
    hub: Hub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        if os.environ.get("HUB_SERVER_LOG"):
            sys.stderr.write(f"hub: {format % args}\n")

    # --------------------------------------------------------------------------------------------- plumbing
    def _route(self, method: str) -> None:
        path = unquote(urlsplit(self.path).path)
        body = self._body()
        try:
            with _LOCK:
                user = self._user()
                for pattern, handler in ROUTES[method]:
                    match = re.fullmatch(pattern, path)
                    if match:
                        return handler(self, user, body, **match.groupdict())
            raise HubError(404, f"no such endpoint: {method} {path}")
        except Exception as e:  # a bug here must reach the client as an error, never as a dropped connection
            if not isinstance(e, HubError):
                e = HubError(500, f"test hub: {type(e).__name__}: {e}")
            extra = {k: f"{self.server_url}/{v}" for k, v in e.extra.items()}
            self._json({"error": e.message, **extra}, e.status, {"X-Error-Code": e.code} if e.code else {})

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
                if size == 0:
                    return b"".join(chunks)
        return b""

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if not auth:
            return None
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.hub.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return "user"

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _readable(self, user: str | None, repo: str) -> dict:
        meta = self.hub.meta(repo)
        if meta["private"] and user is None:
            raise HubError(404, f"Repository {repo} not found", "RepoNotFound")
        return meta

    @staticmethod
    def _need_token(user: str | None) -> None:
        if user is None:
            raise HubError(401, "You must be authenticated to write (no token given)")

    def do_GET(self) -> None:
        self._route("GET")

    def do_HEAD(self) -> None:  # a GET without the body: ``_send`` leaves it out
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    # --------------------------------------------------------------------------------------------- the API
    def whoami(self, user, body):
        self._need_token(user)
        self._json({"type": "user", "name": user, "auth": {"accessToken": {"role": "write"}}})

    def create_repo(self, user, body):
        self._need_token(user)
        data = json.loads(body or b"{}")
        if data.get("type", "model") != "model":
            raise HubError(400, "this test Hub keeps model repos only")
        repo = f"{data.get('organization') or user}/{data['name']}"
        self.hub.create(repo, bool(data.get("private")) or data.get("visibility") == "private")
        self._json({"url": f"{self.server_url}/{repo}", "name": repo, "id": repo})

    def preupload(self, user, body, repo, rev):
        self._need_token(user)
        self.hub.check_revision(self.hub.meta(repo), rev)
        files = json.loads(body)["files"]
        modes = [{"path": f["path"], "uploadMode": "lfs" if f["size"] >= LFS_THRESHOLD else "regular",
                  "shouldIgnore": False} for f in files]
        self._json({"files": modes})

    def lfs_batch(self, user, body, repo):
        self._need_token(user)
        self.hub.meta(repo)
        request = json.loads(body)
        objects = []
        for obj in request["objects"]:
            oid, size = obj["oid"], obj["size"]
            if (self.hub.root / "lfs" / oid).is_file():
                objects.append({"oid": oid, "size": size})  # already there: no actions, nothing to send
                continue
            objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {
                "upload": {"href": f"{self.server_url}/lfs-upload/{oid}"},
                "verify": {"href": f"{self.server_url}/lfs-verify/{oid}"}}})
        self._json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                   headers={"Content-Type": "application/vnd.git-lfs+json"})

    def lfs_upload(self, user, body, oid):
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, f"LFS upload: the content's sha256 is not {oid}")
        (self.hub.root / "lfs" / oid).write_bytes(body)
        self._send(200, b"", {})

    def lfs_verify(self, user, body, oid):
        data = json.loads(body)
        blob = self.hub.root / "lfs" / oid
        if not blob.is_file() or blob.stat().st_size != data["size"]:
            raise HubError(404, f"LFS object {oid} not found")
        self._json({"message": "Everything is fine"})

    def commit(self, user, body, repo, rev):
        self._need_token(user)
        self.hub.check_revision(self.hub.meta(repo), rev)
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        oid = self.hub.commit(repo, lines, header.get("summary", ""))
        self._json({"success": True, "commitOid": oid, "commitUrl": f"{self.server_url}/{repo}/commit/{oid}",
                    "commitMessage": header.get("summary", ""), "pullRequestUrl": None})

    def validate_yaml(self, user, body):
        """The card's front matter, checked as the Hub does before a README.md is committed: YAML that parses to a
        mapping and, if there is one, a ``model-index`` that huggingface_hub's own parser reads (name, task,
        dataset, metrics). Errors are a 400, as on the Hub, so that the client refuses to upload the card."""
        import yaml
        from huggingface_hub.repocard_data import model_index_to_eval_results

        content = json.loads(body)["content"]
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)
        if not match:
            return self._json({"warnings": [{"message": "empty or missing yaml metadata in repo card"}]})
        try:
            data = yaml.safe_load(match.group(1))
            if not isinstance(data, dict):
                raise ValueError("the metadata is not a mapping")
            if "model-index" in data:
                model_index_to_eval_results(data["model-index"])
        except Exception as e:
            return self._json({"errors": [{"message": f"{type(e).__name__}: {e}"}]}, 400)
        self._json({"warnings": []})

    def xet_token(self, user, body, repo, rev=None):
        raise HubError(501, "this test Hub has no Xet storage: upload through LFS (HF_HUB_DISABLE_XET=1)")

    def model_info(self, user, body, repo, rev="main"):
        meta = self._readable(user, repo)
        sha = self.hub.check_revision(meta, rev)
        siblings = [{"rfilename": path, "size": f["size"],
                     **({"lfs": {"sha256": f["lfs"], "size": f["size"], "pointerSize": 134}} if f["lfs"] else {})}
                    for path, f in sorted(meta["files"].items())]
        self._json({"_id": repo, "id": repo, "modelId": repo, "sha": sha, "private": meta["private"],
                    "siblings": siblings, "tags": [], "downloads": 0, "likes": 0}, headers={"X-Repo-Commit": sha})

    def tree(self, user, body, repo, rev, path=None):
        meta = self._readable(user, repo)
        self.hub.check_revision(meta, rev)
        files = self.hub.repo_dir(repo) / "files"
        entries = [{"type": "file", "path": p, "size": f["size"],
                    "oid": git_blob_oid((files / p).read_bytes()),
                    **({"lfs": {"oid": f["lfs"], "size": f["size"], "pointerSize": 134}} if f["lfs"] else {})}
                   for p, f in sorted(meta["files"].items()) if p.startswith((path or "").strip("/"))]
        self._json(entries)

    def resolve(self, user, body, repo, rev, path):
        meta = self._readable(user, repo)
        sha = self.hub.check_revision(meta, rev)
        entry = meta["files"].get(path)
        if entry is None:
            raise HubError(404, f"Entry {path} not found in {repo}", "EntryNotFound")
        content = (self.hub.repo_dir(repo) / "files" / path).read_bytes()
        headers = {"Content-Type": "application/octet-stream", "X-Repo-Commit": sha,
                   "ETag": f'"{git_blob_oid(content)}"'}
        if entry["lfs"]:
            headers |= {"X-Linked-Etag": f'"{entry["lfs"]}"', "X-Linked-Size": str(entry["size"])}
        self._send(200, content, headers)

    @property
    def server_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"


ROUTES = {
    "GET": [
        (r"/api/whoami-v2", Handler.whoami),
        (rf"/api/models/{REPO}/xet-(read|write)-token/(?P<rev>[^/]+)", Handler.xet_token),
        (rf"/api/models/{REPO}/revision/(?P<rev>[^/]+)", Handler.model_info),
        (rf"/api/models/{REPO}/tree/(?P<rev>[^/]+)(?P<path>/.*)?", Handler.tree),
        (rf"/api/models/{REPO}", Handler.model_info),
        (rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", Handler.resolve),
    ],
    "POST": [
        (r"/api/repos/create", Handler.create_repo),
        (r"/api/validate-yaml", Handler.validate_yaml),
        (rf"/api/models/{REPO}/preupload/(?P<rev>[^/]+)", Handler.preupload),
        (rf"/api/models/{REPO}/commit/(?P<rev>[^/]+)", Handler.commit),
        (rf"/{REPO}\.git/info/lfs/objects/batch", Handler.lfs_batch),
        (r"/lfs-verify/(?P<oid>[0-9a-f]{64})", Handler.lfs_verify),
    ],
    "PUT": [(r"/lfs-upload/(?P<oid>[0-9a-f]{64})", Handler.lfs_upload)],
}


def serve(root: Path, port: int = 0, tokens: set[str] | None = None) -> ThreadingHTTPServer:
    """A started server (``server_address`` says its port); ``shutdown()`` stops it. ``root`` may be reused."""
    handler = type("BoundHandler", (Handler,), {"hub": Hub(root, tokens or {DEFAULT_TOKEN})})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hub_server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--root", type=Path, required=True, help="folder that keeps the repos (created if missing)")
    parser.add_argument("--token", action="append", help=f"a token that may write (default {DEFAULT_TOKEN})")
    parser.add_argument("--reset", action="store_true", help="empty --root first")
    args = parser.parse_args(argv)
    if args.reset and args.root.exists():
        shutil.rmtree(args.root)
    server = serve(args.root, args.port, set(args.token or [DEFAULT_TOKEN]))
    print(f"hub on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
