"""The real huggingface_hub client against spaceport's download API.

argv: endpoint token model dataset weights_sha256 cutting_endpoint
(the cutting endpoint forwards to the hub but breaks off the first
download of the weights midway, as a failing network would).
Prints one line per check; exits non-zero on the first failure.
"""
import hashlib
import os
import sys
import tempfile

from huggingface_hub import HfApi, hf_hub_download, snapshot_download

endpoint, token, model, dataset, weights_sha, cutting = sys.argv[1:7]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


with tempfile.TemporaryDirectory() as cache:
    snap = snapshot_download(model, endpoint=endpoint, token=token, cache_dir=cache)
    files = sorted(os.listdir(snap))
    assert files == ["config.json", "weights.bin"], files
    weights = os.path.join(snap, "weights.bin")
    assert os.path.islink(weights), "snapshot files are links into blobs"
    assert sha256(weights) == weights_sha, "weights.bin differs"
    print("snapshot_download: ok", files)

    path = hf_hub_download(dataset, "data/rows.csv", repo_type="dataset",
                           endpoint=endpoint, token=token, cache_dir=cache)
    assert open(path).read().startswith("id,text"), "rows.csv differs"
    print("hf_hub_download dataset: ok")

# The files' metadata as model_info(files_metadata=True) reads it: blob
# ids and sizes, and the SHA-256 of the large file.
info = HfApi(endpoint=endpoint, token=token).model_info(model, files_metadata=True)
by_name = {s.rfilename: s for s in info.siblings}
assert sorted(by_name) == ["config.json", "weights.bin"], sorted(by_name)
big = by_name["weights.bin"]
assert big.lfs is not None and big.lfs.sha256 == weights_sha, big
assert big.size == big.lfs.size and len(big.blob_id) == 40, big
small = by_name["config.json"]
config = b'{"hidden_size": 8}\n'
config_id = hashlib.sha1(b"blob %d\0" % len(config) + config).hexdigest()
assert small.lfs is None and small.size == len(config) and small.blob_id == config_id, small
print("files metadata: ok")

with tempfile.TemporaryDirectory() as cache:
    # The connection breaks off in the middle of the file: the client asks
    # for the rest with a Range request and finishes it.
    path = hf_hub_download(model, "weights.bin", endpoint=cutting, token=token, cache_dir=cache)
    assert sha256(path) == weights_sha, "the resumed weights.bin differs"
    print("resume: ok")
