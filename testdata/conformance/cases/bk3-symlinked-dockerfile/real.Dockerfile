FROM busybox
COPY . /ctx/
RUN ls -a /ctx > /listing
