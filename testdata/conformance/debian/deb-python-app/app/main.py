import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
settings = {}
with open(os.path.join(here, "settings.conf")) as f:
    for line in f:
        key, _, value = line.strip().partition("=")
        settings[key] = value
print(settings["greeting"], "from python", ".".join(map(str, sys.version_info[:2])))
print(sorted(os.listdir(os.path.dirname(here))))
