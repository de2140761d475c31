FROM busybox
ONBUILD RUN echo from-parent-trigger > /parent-trigger
