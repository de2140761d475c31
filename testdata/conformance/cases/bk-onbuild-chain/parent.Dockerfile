FROM busybox
ONBUILD COPY trigger.txt /from-trigger/
ONBUILD RUN cat /from-trigger/trigger.txt > /ran
ONBUILD ENV TRIGGERED=yes
ONBUILD LABEL triggered.label=1
LABEL parent=yes
