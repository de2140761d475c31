#!/bin/sh
echo -n "$my_arg" "$*" > /out
