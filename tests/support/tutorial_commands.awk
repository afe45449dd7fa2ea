# A tutorial in Markdown → the shell script that follows it word for word
# (tests/plugin_authoring/tutorial.sh, tests/python/tutorial.sh): every block
# preceded by "<!-- tutorial-test: file PATH -->" is written to PATH, every
# ```sh block is run, in order; a block preceded by
# "<!-- tutorial-test: skip -->" (building or installing contra itself) is
# left out, the test doing it its own way.
/^<!-- tutorial-test: skip -->/ { skip = 1; next }
/^<!-- tutorial-test: file / { file = $4; next }
/^```/ {
  if (!inblock) {
    inblock = 1
    lang = substr($0, 4)
    if (file != "") {
      mode = "file"
      printf "mkdir -p \"$(dirname %s)\"\ncat > %s <<'CONTRA_TUTORIAL_EOF'\n", file, file
    } else if (lang == "sh" && !skip) {
      mode = "sh"
    } else {
      mode = "none"
    }
  } else {
    if (mode == "file") print "CONTRA_TUTORIAL_EOF"
    inblock = 0; file = ""; skip = 0; mode = ""
  }
  next
}
inblock && mode != "none" { print }
