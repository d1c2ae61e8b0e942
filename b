{
  "counts": {
    "built": 0,
    "cached": 3,
    "failed": 0,
    "skipped": 0
  },
  "drift": [],
  "images": [],
  "jobs": [
    {
      "error": null,
      "id": "a@linux/amd64",
      "input_key": "sha256:a591c8438f1325b63cf94abbcaf6a0942da236bbb2d09ab42e93c1957279feea",
      "log": null,
      "outputs": {
        "a": "sha256:44185e6b3ce9b9e6dad16ab580725d6bb92f10ca18a26bdce3e29b0223eb2d53"
      },
      "platform": "linux/amd64",
      "recipe": "a",
      "seconds": 0.0,
      "status": "cached",
      "strategy": "native",
      "toolchain": "gcc gcc (Debian 12.2.0-14+deb12u1) 12.2.0"
    },
    {
      "error": null,
      "id": "a@linux/arm64",
      "input_key": "sha256:3067c8cf18327b13df6251e343854cb356881b267bcd2fbc9edb120ae152b8cb",
      "log": null,
      "outputs": {
        "a": "sha256:85c68295b46990e105c3c88beb216e872f167e1a3ff45e1a7be70ac32cac12d1"
      },
      "platform": "linux/arm64",
      "recipe": "a",
      "seconds": 0.0,
      "status": "cached",
      "strategy": "cross",
      "toolchain": "gcc aarch64-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0"
    },
    {
      "error": null,
      "id": "b@linux/amd64",
      "input_key": "sha256:aa2eea01620a8c28679fd5add8d6a6b9e03a75d4c3bebdd2d8e7962c45c81de4",
      "log": null,
      "outputs": {
        "b": "sha256:44185e6b3ce9b9e6dad16ab580725d6bb92f10ca18a26bdce3e29b0223eb2d53"
      },
      "platform": "linux/amd64",
      "recipe": "b",
      "seconds": 0.0,
      "status": "cached",
      "strategy": "native",
      "toolchain": "gcc gcc (Debian 12.2.0-14+deb12u1) 12.2.0"
    }
  ],
  "ok": true,
  "seconds": 0.006,
  "warnings": []
}
