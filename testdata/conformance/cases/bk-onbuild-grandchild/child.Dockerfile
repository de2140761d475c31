FROM bk-onbuild-gc-parent
ONBUILD RUN echo from-child-trigger > /child-trigger
