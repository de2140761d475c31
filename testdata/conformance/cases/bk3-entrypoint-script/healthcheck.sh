#!/bin/sh
test -f /tmp/ok
