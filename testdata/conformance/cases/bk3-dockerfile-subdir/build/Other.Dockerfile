FROM busybox
COPY . /ctx/
COPY a.txt /a
RUN ls -a /ctx > /listing
