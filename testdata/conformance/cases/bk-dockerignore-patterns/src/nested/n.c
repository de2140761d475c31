src/nested/n.c
