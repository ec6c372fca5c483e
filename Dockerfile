# One cstake node per container (docs: README, "Two ways to run a devnet").
#
# Two stages on one base image: the builder has a compiler and libgmp-dev and
# installs the project into a virtual environment (py-libp2p pins fastecdsa,
# which has no binary wheel and compiles against GMP); the runtime copies only
# that environment, needs libgmp10 at run time and has no compiler.
#
# CSTAKE_BASE_IMAGE picks the base: python:3.11-slim by default, or a local
# Debian image with python3, python3-venv, python3-pip, libgmp10 and
# ca-certificates on a machine that reaches no image registry. Both stages
# must use the same base, since the virtual environment points at its python.
ARG CSTAKE_BASE_IMAGE=python:3.11-slim

FROM ${CSTAKE_BASE_IMAGE} AS builder
# A PEM bundle of extra certificate authorities for a build behind an
# intercepting proxy; empty (the default) adds none. Only the builder sees it.
ARG EXTRA_CA_CERTS=""
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential libgmp-dev python3-dev python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && if [ -n "$EXTRA_CA_CERTS" ]; then \
         printf '%s\n' "$EXTRA_CA_CERTS" > /usr/local/share/ca-certificates/cstake-build-extra.crt \
         && update-ca-certificates; \
       fi
# pip inside a venv trusts its own CA bundle; point it at the system's (with the extras).
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /opt/cstake/venv && /opt/cstake/venv/bin/pip install --upgrade pip wheel setuptools
WORKDIR /src
# Dependencies first (the list in pyproject.toml alone), so that a source change rebuilds one layer.
COPY pyproject.toml README.md ./
RUN python3 -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && /opt/cstake/venv/bin/pip install -r /tmp/requirements.txt
COPY consensus ./consensus
COPY storage ./storage
COPY p2p ./p2p
COPY node ./node
RUN /opt/cstake/venv/bin/pip install --no-deps . \
    && find /opt/cstake/venv -name '__pycache__' -prune -exec rm -rf {} + \
    && /opt/cstake/venv/bin/pip uninstall -y pip wheel setuptools

FROM ${CSTAKE_BASE_IMAGE}
# libgmp10 is in Debian's python base images already; install it only where missing.
RUN if ! ls /usr/lib/*/libgmp.so.10 >/dev/null 2>&1; then \
         apt-get update && apt-get install -y --no-install-recommends libgmp10 && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin cstake \
    # Mount points owned by the node's user: a named volume mounted here starts with this owner.
    && mkdir -p /home/cstake/node /devnet \
    && chown cstake:cstake /home/cstake/node /devnet
COPY --from=builder /opt/cstake/venv /opt/cstake/venv
ENV PATH=/opt/cstake/venv/bin:$PATH PYTHONUNBUFFERED=1 CSTAKE_HOME=/home/cstake/node

USER cstake
WORKDIR /home/cstake
VOLUME ["/home/cstake/node"]
EXPOSE 26656 26657

# /health is 200 while the node commits blocks (503 when stalled); no curl in a slim image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:26657/health', timeout=3)"]

ENTRYPOINT ["cstake"]
CMD ["start", "--home", "/home/cstake/node"]
