{
  "targets": [
    {
      "target_name": "setns",
      "sources": ["setns.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-O2"]
    }
  ]
}
