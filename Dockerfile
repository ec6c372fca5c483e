# One cstake node per container. Data lives on a volume at /home/cstake/node.
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends libleveldb-dev build-essential curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 cstake

WORKDIR /opt/cstake
COPY pyproject.toml README.md ./
COPY consensus ./consensus
COPY storage ./storage
COPY p2p ./p2p
COPY node ./node
COPY config ./config
RUN pip install --no-cache-dir . \
    && apt-get purge -y build-essential && apt-get autoremove -y

USER cstake
ENV CSTAKE_HOME=/home/cstake/node
VOLUME ["/home/cstake/node"]
EXPOSE 26656 26657

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:26657/health || exit 1

ENTRYPOINT ["cstake"]
CMD ["start", "--home", "/home/cstake/node"]
