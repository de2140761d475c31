FROM busybox
ONBUILD RUN echo "trigger ran" > /triggered
