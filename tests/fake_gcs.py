"""An offline stand-in for Google Cloud Storage: a ``gs://`` backend the
tests can run a whole job on.

Two views of one store, a local folder (``<root>/<bucket>/<object name>``):

* ``serve(root)``: an HTTP server speaking the part of GCS's JSON API that
  TensorStore's ``gcs`` driver uses (media upload, ranged media download,
  metadata, delete, list; generation preconditions), which is how Orbax
  writes arrays to ``gs://``, and the bucket metadata Orbax reads through
  ``google-cloud-storage`` (is the bucket's namespace hierarchical?). Point
  TensorStore at it with ``TENSORSTORE_GCS_HTTP_URL``, google-cloud-storage
  with ``STORAGE_EMULATOR_HOST``.
* ``FakeGcsFileSystem``: an fsspec filesystem for the ``gs`` / ``gcs``
  protocols, which is what ``etils.epath`` uses for ``gs://`` when
  TensorFlow is not installed (Orbax's own metadata and every file of
  ume_jax). It keeps object-store semantics where they differ from a
  disk: no appending, and "folders" exist only as prefixes of objects.

Only for tests: no authentication, one process's worth of concurrency.
"""
import http.server
import json
import os
import threading
import urllib.parse

import fsspec
from fsspec.implementations.local import LocalFileSystem


# -- the HTTP side (TensorStore) ---------------------------------------------

def _generation(path: str) -> int:
  return os.stat(path).st_mtime_ns or 1


def _metadata(bucket: str, name: str, path: str) -> dict:
  size = os.path.getsize(path)
  gen = _generation(path)
  return {"kind": "storage#object", "bucket": bucket, "name": name,
          "size": str(size), "generation": str(gen),
          "metageneration": "1", "id": f"{bucket}/{name}/{gen}"}


class _Handler(http.server.BaseHTTPRequestHandler):
  protocol_version = "HTTP/1.1"
  root = ""
  lock = threading.Lock()

  def log_message(self, *args):   # quiet
    pass

  def _reply(self, code: int, body: bytes = b"", headers=None,
             content_type: str = "application/json"):
    self.send_response(code)
    for k, v in (headers or {}).items():
      self.send_header(k, v)
    self.send_header("Content-Type", content_type)
    self.send_header("Content-Length", str(len(body)))
    self.end_headers()
    if self.command != "HEAD":
      self.wfile.write(body)

  def _json(self, code: int, value: dict):
    self._reply(code, json.dumps(value).encode())

  def _parse(self):
    url = urllib.parse.urlsplit(self.path)
    query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
    parts = [urllib.parse.unquote(p) for p in url.path.split("/")]
    return parts, query

  def _object_path(self, bucket: str, name: str) -> str:
    path = os.path.normpath(os.path.join(self.root, bucket, name))
    if not path.startswith(os.path.join(self.root, bucket)):
      raise ValueError(name)
    return path

  def _preconditions_fail(self, path: str, query: dict) -> bool:
    exists = os.path.isfile(path)
    gen = _generation(path) if exists else 0
    if "ifGenerationMatch" in query and int(query["ifGenerationMatch"]) != gen:
      return True
    if ("ifGenerationNotMatch" in query
        and int(query["ifGenerationNotMatch"]) == gen):
      return True
    return False

  def _refused(self, path: str, query: dict, not_modified=False) -> bool:
    """Replies 404 for a missing object, 412 (or, for a read's
    ``ifGenerationNotMatch``, 304) for a failed precondition."""
    if not os.path.isfile(path):
      self._json(404, {"error": {"code": 404, "message": "not found"}})
    elif self._preconditions_fail(path, query):
      if not_modified and "ifGenerationNotMatch" in query:
        self._reply(304, b"")
      else:
        self._json(412, {"error": {"code": 412, "message": "precondition"}})
    else:
      return False
    return True

  def _body(self) -> bytes:
    n = int(self.headers.get("Content-Length") or 0)
    return self.rfile.read(n)

  def do_POST(self):
    parts, query = self._parse()
    # /upload/storage/v1/b/<bucket>/o?uploadType=media&name=<name>
    body = self._body()
    if parts[1:5] != ["upload", "storage", "v1", "b"] or parts[6] != "o":
      return self._json(400, {"error": {"message": self.path}})
    bucket, name = parts[5], query["name"]
    path = self._object_path(bucket, name)
    with self.lock:
      if self._preconditions_fail(path, query):
        return self._json(412, {"error": {"code": 412,
                                          "message": "precondition"}})
      os.makedirs(os.path.dirname(path), exist_ok=True)
      tmp = path + ".uploading"
      with open(tmp, "wb") as f:
        f.write(body)
      os.replace(tmp, path)
      self._json(200, _metadata(bucket, name, path))

  def do_GET(self):
    parts, query = self._parse()
    if parts[1:4] != ["storage", "v1", "b"] or len(parts) < 5:
      return self._json(400, {"error": {"message": self.path}})
    bucket = parts[4]
    if len(parts) == 5:   # the bucket's metadata (Orbax asks: is it HNS?)
      if not os.path.isdir(os.path.join(self.root, bucket)):
        return self._json(404, {"error": {"code": 404,
                                          "message": "no bucket"}})
      return self._json(200, {"kind": "storage#bucket", "name": bucket,
                              "id": bucket, "location": "LOCAL"})
    if len(parts) == 6:   # list: /storage/v1/b/<bucket>/o
      return self._list(bucket, query)
    name = "/".join(parts[6:])
    path = self._object_path(bucket, name)
    with self.lock:
      if self._refused(path, query, not_modified=True):
        return
      meta = _metadata(bucket, name, path)
      if query.get("alt") != "media":
        return self._json(200, meta)
      with open(path, "rb") as f:
        data = f.read()
    headers = {"x-goog-generation": meta["generation"],
               "x-goog-metageneration": "1"}
    rng = self.headers.get("Range")
    if rng:
      start, _, end = rng.removeprefix("bytes=").partition("-")
      start = int(start) if start else max(len(data) - int(end), 0)
      end = int(end) + 1 if end and rng.split("=")[1][0] != "-" else len(data)
      headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
      return self._reply(206, data[start:end], headers,
                         "application/octet-stream")
    self._reply(200, data, headers, "application/octet-stream")

  def _list(self, bucket: str, query: dict):
    prefix = query.get("prefix", "")
    top = os.path.join(self.root, bucket)
    names = []
    for dirpath, _, files in os.walk(top):
      for f in files:
        if f.endswith(".uploading"):
          continue
        name = os.path.relpath(os.path.join(dirpath, f), top)
        if name.startswith(prefix):
          names.append(name)
    names.sort()
    lo, hi = query.get("startOffset"), query.get("endOffset")
    names = [n for n in names if (lo is None or n >= lo)
             and (hi is None or n < hi)]
    items = [_metadata(bucket, n, os.path.join(top, n)) for n in names]
    self._json(200, {"kind": "storage#objects", "items": items})

  def do_DELETE(self):
    parts, query = self._parse()
    bucket, name = parts[4], "/".join(parts[6:])
    path = self._object_path(bucket, name)
    with self.lock:
      if self._refused(path, query):
        return
      os.remove(path)
    self._reply(204)


def serve(root: str) -> tuple[http.server.ThreadingHTTPServer, str]:
  """Starts the server in a daemon thread; returns it and its URL."""
  handler = type("Handler", (_Handler,), {"root": os.path.abspath(root)})
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  return server, f"http://127.0.0.1:{server.server_address[1]}"


# -- the fsspec side (etils.epath) --------------------------------------------

class FakeGcsFileSystem(LocalFileSystem):
  """``gs://<bucket>/<name>`` as ``<root>/<bucket>/<name>``, with object
  semantics: "folders" exist only while objects are under them, creating
  one does nothing, and files cannot be appended to."""

  protocol = ("gs", "gcs")
  root = ""   # set by ``register``

  def __init__(self, *args, **kwargs):
    del args, kwargs   # gcsfs's options (finalize_on_close, ...)
    super().__init__(auto_mkdir=False)

  @classmethod
  def _strip_protocol(cls, path):
    path = os.fspath(path)
    if path.startswith(cls.root + "/") or path == cls.root:
      return path.rstrip("/")      # already ours (an internal call)
    for prefix in ("gs://", "gcs://"):
      path = path.removeprefix(prefix)
    return os.path.join(cls.root, path.lstrip("/")).rstrip("/")

  def _public(self, local: str) -> str:
    return os.path.relpath(local, self.root)

  def isdir(self, path):
    local = self._strip_protocol(path)
    return os.path.isdir(local) and any(
        files for _, _, files in os.walk(local))

  def exists(self, path, **kwargs):
    local = self._strip_protocol(path)
    return os.path.isfile(local) or self.isdir(path)

  def makedirs(self, path, exist_ok=False):
    pass

  def mkdir(self, path, create_parents=True, **kwargs):
    pass

  def ls(self, path, detail=False, **kwargs):
    local = self._strip_protocol(path)
    if not self.isdir(path):
      raise FileNotFoundError(path)
    names = [os.path.join(local, n) for n in sorted(os.listdir(local))
             if os.path.isfile(os.path.join(local, n))
             or self.isdir(os.path.join(local, n))]
    if detail:
      return [self.info(n) for n in names]
    return names

  def glob(self, path, **kwargs):
    return [self._public(p) for p in super().glob(path, **kwargs)
            if self.exists(p)]

  def cp_file(self, path1, path2, **kwargs):
    local = self._strip_protocol(path2)
    os.makedirs(os.path.dirname(local), exist_ok=True)
    return super().cp_file(path1, local, **kwargs)

  def _open(self, path, mode="rb", **kwargs):
    if "a" in mode:
      raise NotImplementedError(
          f"{path}: objects cannot be appended to (mode {mode!r})")
    local = self._strip_protocol(path)
    if "w" in mode:   # an object's "folders" come with it
      os.makedirs(os.path.dirname(local), exist_ok=True)
    return super()._open(local, mode, **kwargs)


def register(root: str) -> None:
  """Serves ``gs://`` from ``root`` to epath in this process."""
  FakeGcsFileSystem.root = os.path.abspath(root)
  for name in FakeGcsFileSystem.protocol:
    fsspec.register_implementation(name, FakeGcsFileSystem, clobber=True)
  FakeGcsFileSystem.clear_instance_cache()
