#!/usr/bin/env bash
# check-compose.sh: checks docker-compose.yml, docker-compose.ha.yml,
# deploy/db.env and the Dockerfile against each other and against the Go
# configuration code, without Docker. Exit status 0 when consistent; 1 with
# one line per problem, prefixed with the compose file it is about.
#
# What it checks:
#   - every variable a service sets (environment: or env_file:) is read by the
#     binary of that service: its name appears as a string literal in that
#     binary's config or main package (viper BindEnv, os.Getenv), or it is
#     one the Go runtime reads (GODEBUG, GOMEMLIMIT, SSL_CERT_FILE, proxies…);
#   - every published or exposed container port is a port the service's
#     environment configures (WA_WEB_PORT, WA_CORE_PORT, WA_CHAT_PORT,
#     WA_CHAT_FALLBACK_PORT, WA_CHATD_ADMIN_PORT, WA_CHATD_MEDIA_PORT; 3306
#     for the database), the chatd admin API is published on the host's
#     loopback only, the chatd media port is published under its own number
#     (clients combine the host they dial with the port chatd names) unless
#     WA_CHATD_MEDIA_URL says where it is, and the services listen on all
#     interfaces of their container;
#   - the addresses between services agree: WA_DB_HOSTNAME/WA_DB_PORT, the
#     chatd host and ports coreapp dials, WA_CORE_ENDPOINT, waphone's
#     --network/--admin, the database names, MYSQL_ROOT_PASSWORD;
#   - every build target exists as a stage of the Dockerfile, with an
#     ENTRYPOINT; .dockerignore keeps .git, bin and data out;
#   - health checks only use variables the service sets (written $${VAR} so
#     the container's shell expands them), every long-running service has a
#     health check, restart: unless-stopped and cap_drop: [ALL];
#   - several nodes side by side: WA_CORE_ENDPOINT lists every coreapp
#     service (a comma-separated list), no host port is published twice,
#     WA_NODE_ID differs between coreapp services, WA_CORE_ADVERTISE_ADDR
#     names the service itself and its port, every coreapp gets the same
#     keystore secret (one WA_KEYSTORE_SECRET, never written in the compose
#     file, base64 of 32 bytes when its env file exists; or one shared volume
#     at WA_DATA_DIR) and mounts the same media volume at WA_MEDIA_DIR;
#   - docker-compose.ha.yml runs the same deployment as docker-compose.yml:
#     the same project name, the same db, chatd and waphone services, and the
#     same volume declarations. deploy/keystore.env is created by the
#     operator: when it is missing it counts as setting WA_KEYSTORE_SECRET.
#
# It needs python3; PyYAML is used when installed, otherwise a small parser
# for the YAML subset docker-compose.yml is written in (block mappings and
# lists, JSON-style flow lists, quoted or plain scalars, no anchors).
# CHECK_COMPOSE_PARSER=builtin forces that parser (to test it).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v python3 >/dev/null || { echo "check-compose: python3 is required" >&2; exit 2; }
exec python3 - "$@" <<'PY'
import base64, json, os, re, sys

# The single-node file and the high-availability one; both must pass.
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.ha.yml")
DOCKERFILE, DOCKERIGNORE = "Dockerfile", ".dockerignore"
COMPOSE = COMPOSE_FILES[0]  # the file being checked
# Services the HA file takes over from docker-compose.yml unchanged.
SHARED_SERVICES = ("db", "chatd", "waphone")
# Env files the operator creates (secrets, never committed): when one is
# missing, the check assumes it sets exactly these variables; when present,
# it is read and checked like any other.
OPERATOR_ENV_FILES = {"deploy/keystore.env": ("WA_KEYSTORE_SECRET",)}
# The image's defaults (Dockerfile ENV of the coreapp stage).
CORE_DEFAULT_DATA_DIR, CORE_DEFAULT_MEDIA_DIR = "/var/lib/openwaba", "/usr/local/wamedia"

# Where each binary reads its configuration (non-test .go files). coreapp
# also uses chatd/config (BindDB, the WA_DB_* and WA_LOG_* bindings).
SOURCES = {
    "webapp": ["webapp/config", "webapp/cmd/webapp"],
    "coreapp": ["coreapp/config", "coreapp/cmd/coreapp", "chatd/config"],
    "chatd": ["chatd/config", "chatd/cmd/chatd"],
    "waphone": ["chatd/cmd/waphone"],
}
# The variables that set the ports a binary listens on.
LISTEN_PORTS = {
    "webapp": ["WA_WEB_PORT"],
    "coreapp": ["WA_CORE_PORT"],
    "chatd": ["WA_CHAT_PORT", "WA_CHAT_FALLBACK_PORT", "WA_CHATD_ADMIN_PORT", "WA_CHATD_MEDIA_PORT"],
    "waphone": ["WA_WEBPHONE_PORT"],
}
# The variables that set the address it binds ("0.0.0.0" in a container).
LISTEN_ADDRS = {"webapp": ["WA_WEB_ADDR"], "coreapp": ["WA_CORE_ADDR"],
                "chatd": ["WA_CHATD_LISTEN_ADDR", "WA_CHATD_ADMIN_ADDR"], "waphone": ["WA_WEBPHONE_ADDR"]}
MYSQL_PORT = 3306  # mysqld's port inside its container
# Read by the Go runtime or standard library in every binary, not by our code.
GO_RUNTIME_ENV = {"GODEBUG", "GOMAXPROCS", "GOMEMLIMIT", "GOGC", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR",
                  "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"}

errors = []
PREFIX = ""  # the file being checked, for the messages
def fail(msg):
    errors.append(PREFIX + msg)

# ---------------------------------------------------------------- YAML ----
class YAMLError(Exception):
    pass

def builtin_yaml(text):
    """Parse the YAML subset used by docker-compose.yml."""
    lines = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = strip_comment(raw).rstrip()
        if line.strip() == "" or line.strip() == "---":
            continue
        if "\t" in line[: len(line) - len(line.lstrip())]:
            raise YAMLError(f"line {n}: tab in indentation")
        lines.append((n, len(line) - len(line.lstrip()), line.strip()))
    pos = [0]

    def block(indent):
        n, ind, s = lines[pos[0]]
        if s.startswith("- ") or s == "-":
            return seq(ind)
        return mapping(ind)

    def seq(indent):
        out = []
        while pos[0] < len(lines):
            n, ind, s = lines[pos[0]]
            if ind < indent or not (s.startswith("- ") or s == "-"):
                break
            if ind > indent:
                raise YAMLError(f"line {n}: bad indentation")
            item = s[1:].strip()
            pos[0] += 1
            unsupported(item, n)
            if item == "":
                raise YAMLError(f"line {n}: nested blocks in lists are not supported")
            if re.match(r"""^[^"'\[{][^:]*:(\s|$)""", item):
                raise YAMLError(f"line {n}: mappings in lists are not supported")
            out.append(scalar(item, n))
        return out

    def mapping(indent):
        out = {}
        while pos[0] < len(lines):
            n, ind, s = lines[pos[0]]
            if ind < indent:
                break
            if ind > indent:
                raise YAMLError(f"line {n}: bad indentation")
            if s.startswith("- "):
                break
            m = re.match(r"""^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^:]+?)\s*:(?:\s+(.*))?$""", s)
            if not m:
                raise YAMLError(f"line {n}: expected 'key: value': {s}")
            key = scalar(m.group(1), n)
            if not isinstance(key, str):
                key = str(key)
            if key in out:
                raise YAMLError(f"line {n}: duplicate key {key}")
            rest = m.group(2)
            pos[0] += 1
            if key == "<<":
                raise YAMLError(f"line {n}: merge keys are not supported")
            unsupported(rest or "", n)
            if rest is not None and rest != "":
                out[key] = scalar(rest, n)
            elif pos[0] < len(lines) and (lines[pos[0]][1] > indent or
                                          (lines[pos[0]][1] == indent and lines[pos[0]][2].startswith("- "))):
                out[key] = block(lines[pos[0]][1])
            else:
                out[key] = None
        return out

    if not lines:
        return None
    v = block(0)
    if pos[0] != len(lines):
        raise YAMLError(f"line {lines[pos[0]][0]}: unexpected content")
    return v

def unsupported(value, n):
    if value[:1] in ("&", "*", "!", "|", ">"):
        raise YAMLError(f"line {n}: anchors, aliases, tags and block scalars are not supported")

def strip_comment(line):
    q = None
    for i, c in enumerate(line):
        if q:
            if c == q and not (q == '"' and line[i - 1] == "\\"):
                q = None
        elif c in "\"'" and (i == 0 or line[i - 1] in " [{,:-"):
            q = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line

def scalar(s, n):
    s = s.strip()
    if s.startswith('"'):
        try:
            return json.loads(s)
        except ValueError:
            raise YAMLError(f"line {n}: bad double-quoted string {s}")
    if s.startswith("'"):
        if not s.endswith("'") or len(s) < 2:
            raise YAMLError(f"line {n}: bad single-quoted string {s}")
        return s[1:-1].replace("''", "'")
    if s.startswith("["):
        if not s.endswith("]"):
            raise YAMLError(f"line {n}: flow lists must be on one line")
        inner = s[1:-1].strip()
        return [] if inner == "" else [scalar(p, n) for p in split_flow(inner, n)]
    if s.startswith("{"):
        if s == "{}":
            return {}
        raise YAMLError(f"line {n}: flow mappings are not supported")
    if s in ("null", "~", "Null", "NULL"):
        return None
    if s in ("true", "True", "TRUE", "yes", "on"):
        return True
    if s in ("false", "False", "FALSE", "no", "off"):
        return False
    if re.fullmatch(r"[-+]?[0-9]+", s):
        return int(s)
    return s

def split_flow(s, n):
    parts, cur, q = [], "", None
    for i, c in enumerate(s):
        if q:
            cur += c
            if c == q and not (q == '"' and s[i - 1] == "\\"):
                q = None
        elif c in "\"'":
            q = c
            cur += c
        elif c == ",":
            parts.append(cur)
            cur = ""
        elif c in "[]{}":
            raise YAMLError(f"line {n}: nested flow collections are not supported")
        else:
            cur += c
    if q:
        raise YAMLError(f"line {n}: unterminated string")
    parts.append(cur)
    return [p.strip() for p in parts]

def load_yaml(path):
    text = open(path).read()
    if os.environ.get("CHECK_COMPOSE_PARSER") != "builtin":
        try:
            import yaml
        except ImportError:
            pass
        else:
            return yaml.safe_load(text)
    return builtin_yaml(text)

# ------------------------------------------------------------ helpers ----
def read_env_file(path):
    env = {}
    for n, raw in enumerate(open(path).read().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):]
        if "=" not in line:
            fail(f"{path}:{n}: not KEY=VALUE: {raw}")
            continue
        k, v = line.split("=", 1)
        k, v = k.strip(), v.strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            v = v[1:-1]
        if k in env:
            fail(f"{path}:{n}: {k} is set twice")
        env[k] = v
    return env

def as_list(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]

def service_env(name, svc):
    """{var: (value, origin)} as docker compose computes it (environment wins)."""
    env = {}
    for f in as_list(svc.get("env_file")):
        if isinstance(f, dict):
            f = f.get("path")
        if not os.path.isfile(f) and f in OPERATOR_ENV_FILES:
            for k in OPERATOR_ENV_FILES[f]:
                env[k] = ("<set by the operator>", f)
            continue
        if not os.path.isfile(f):
            fail(f"service {name}: env_file {f} does not exist")
            continue
        for k, v in read_env_file(f).items():
            env[k] = (v, f)
    e = svc.get("environment") or {}
    if isinstance(e, list):
        e = dict((x.split("=", 1) + [None])[:2] for x in e)
    for k, v in e.items():
        env[k] = ("" if v is None else str(v).lower() if isinstance(v, bool) else str(v), "environment")
    return env

_literal_cache = {}
def go_literals(dirs):
    key = tuple(dirs)
    if key not in _literal_cache:
        text = []
        for d in dirs:
            if not os.path.isdir(d):
                fail(f"Go source folder {d} is missing (update SOURCES in deploy/check-compose.sh)")
                continue
            for f in sorted(os.listdir(d)):
                if f.endswith(".go") and not f.endswith("_test.go"):
                    text.append(open(os.path.join(d, f)).read())
        _literal_cache[key] = "\n".join(text)
    return _literal_cache[key]

def parse_port(spec):
    """'[ip:]host:container[/proto]' or 'container' -> (ip, host, container)."""
    if isinstance(spec, dict):
        return (spec.get("host_ip"), str(spec.get("published", "")), str(spec.get("target")))
    s = str(spec).split("/", 1)[0]
    parts = s.rsplit(":", 2)
    if len(parts) == 1:
        return (None, None, parts[0])
    if len(parts) == 2:
        return (None, parts[0], parts[1])
    return (parts[0].strip("[]"), parts[1], parts[2])

def hostport(s):
    m = re.fullmatch(r"(.+):([0-9]+)", s or "")
    return (m.group(1), m.group(2)) if m else (None, None)

# ---------------------------------------------------------- the checks ----
for f in COMPOSE_FILES + (DOCKERFILE, DOCKERIGNORE):
    if not os.path.isfile(f):
        fail(f"{f} is missing")
if errors:
    print("\n".join("check-compose: " + e for e in errors), file=sys.stderr)
    sys.exit(1)

# Dockerfile stages.
stages, stage = {}, None
for line in open(DOCKERFILE).read().splitlines():
    m = re.match(r"\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$", line, re.I)
    if m:
        stage = (m.group(2) or "").lower()
        stages[stage] = {"entrypoint": None}
        continue
    m = re.match(r"\s*ENTRYPOINT\s+(.*)$", line, re.I)
    if m and stage is not None:
        stages[stage]["entrypoint"] = m.group(1)

ignored = {l.strip().strip("/") for l in open(DOCKERIGNORE).read().splitlines() if l.strip() and not l.startswith("#")}
for need in (".git", "bin", "data") + COMPOSE_FILES:
    if need not in ignored:
        fail(f"{DOCKERIGNORE} should exclude {need}")

def check(path):
    """Checks one compose file; returns its parsed form (None if it does not parse)."""
    global COMPOSE, PREFIX
    COMPOSE, PREFIX = path, path + ": "
    try:
        compose = load_yaml(COMPOSE)
    except Exception as e:  # YAMLError or PyYAML's own
        fail(f"does not parse: {e}")
        return None
    services = (compose or {}).get("services") or {}
    if not services:
        fail("no services")

    top_volumes = set((compose.get("volumes") or {}).keys())
    targets, envs = {}, {}
    for name, svc in services.items():
        svc = svc or {}
        env = service_env(name, svc)
        envs[name] = env
        build = svc.get("build")
        target = None
        if build is not None:
            if not isinstance(build, dict) or not build.get("target"):
                fail(f"service {name}: build needs a target (one image per service from the one Dockerfile)")
            else:
                target = build["target"]
                dockerfile = os.path.join(build.get("context", "."), build.get("dockerfile", "Dockerfile"))
                if os.path.normpath(dockerfile) != DOCKERFILE:
                    fail(f"service {name}: builds {dockerfile}; this check only knows {DOCKERFILE}")
                elif target.lower() not in stages:
                    fail(f"service {name}: target {target} is not a stage of {DOCKERFILE} (stages: {', '.join(s for s in stages if s)})")
                elif not stages[target.lower()]["entrypoint"]:
                    fail(f"service {name}: stage {target} of {DOCKERFILE} has no ENTRYPOINT")
                if target not in SOURCES:
                    fail(f"service {name}: unknown target {target}: add it to SOURCES in deploy/check-compose.sh")
                    target = None
        targets[name] = target

        # 1. Every variable is read by the service's binary.
        if target:
            src = go_literals(SOURCES[target])
            for var, (_, origin) in sorted(env.items()):
                if f'"{var}"' not in src and var not in GO_RUNTIME_ENV:
                    fail(f"service {name}: {var} (set in {origin}) is not read by {target}: "
                         f'no "{var}" in {", ".join(SOURCES[target])}')
        elif svc.get("image", "").split(":")[0] not in ("mysql", "mariadb"):
            for var, (_, origin) in sorted(env.items()):
                if var.startswith("WA_"):
                    fail(f"service {name}: {var} set in {origin}, but the service is not an openwaba binary")

        # 2. Published and exposed container ports are the configured ones.
        ports = [parse_port(p) for p in as_list(svc.get("ports"))]
        exposed = [str(p).split("/", 1)[0] for p in as_list(svc.get("expose"))]
        if target:
            configured = {}
            for var in LISTEN_PORTS[target]:
                if var in env:
                    configured[env[var][0]] = var
            for ip, host, cport in ports:
                if cport not in configured:
                    fail(f"service {name}: container port {cport} (ports: {host}:{cport}) is not configured: "
                         f"set {' or '.join(LISTEN_PORTS[target]) or '(no port variable)'} to {cport} in its environment")
            for cport in exposed:
                if cport not in configured:
                    fail(f"service {name}: exposed port {cport} is not configured by {', '.join(LISTEN_PORTS[target]) or '(none)'}")
            for var in LISTEN_ADDRS.get(target, []):
                if var in env and env[var][0] not in ("0.0.0.0", "::", ""):
                    fail(f"service {name}: {var}={env[var][0]}: bind 0.0.0.0 in a container, or published ports cannot reach it")
            if target == "chatd" and "WA_CHATD_ADMIN_PORT" in env:
                admin = env["WA_CHATD_ADMIN_PORT"][0]
                for ip, host, cport in ports:
                    if cport == admin and ip not in ("127.0.0.1", "::1", "localhost"):
                        fail(f"service {name}: the sandbox admin API (port {admin}) hands out verification codes: "
                             f'publish it as "127.0.0.1:{host}:{cport}", not on every host interface')
                if any(cport == admin for _, _, cport in ports) and env.get("WA_CHATD_ADMIN_ADDR", ("127.0.0.1",))[0] != "0.0.0.0":
                    fail(f"service {name}: the admin port is published but WA_CHATD_ADMIN_ADDR is not 0.0.0.0")
            if target == "waphone" and "WA_WEBPHONE_PORT" in env:
                for ip, host, cport in ports:
                    if cport == env["WA_WEBPHONE_PORT"][0] and ip not in ("127.0.0.1", "::1", "localhost"):
                        fail(f"service {name}: the web phone has no login: publish it as "
                             f'"127.0.0.1:{host}:{cport}", not on every host interface')
            if target == "chatd" and "WA_CHATD_MEDIA_PORT" in env and not env.get("WA_CHATD_MEDIA_URL", ("",))[0]:
                media = env["WA_CHATD_MEDIA_PORT"][0]
                for ip, host, cport in ports:
                    if cport == media and host != cport:
                        fail(f"service {name}: the media port is published as {host}:{cport}, but chatd tells clients "
                             f"port {cport}: publish it as \"{cport}:{cport}\" or set WA_CHATD_MEDIA_URL")
            privileged = [p for p, v in configured.items() if p.isdigit() and 0 < int(p) < 1024]
            if privileged and str((svc.get("sysctls") or {}).get("net.ipv4.ip_unprivileged_port_start", "")) != "0" \
                    and "NET_BIND_SERVICE" not in as_list(svc.get("cap_add")):
                fail(f"service {name}: listens on port {', '.join(privileged)} as a non-root user: "
                     "set sysctls net.ipv4.ip_unprivileged_port_start: 0")
        elif svc.get("image", "").split(":")[0] in ("mysql", "mariadb"):
            for ip, host, cport in ports:
                if cport != str(MYSQL_PORT):
                    fail(f"service {name}: container port {cport} is not mysqld's {MYSQL_PORT}")

        # 3. Health checks, restart policy, capabilities, volumes.
        long_running = not svc.get("profiles")
        hc = svc.get("healthcheck")
        if long_running and not hc:
            fail(f"service {name}: no healthcheck")
        if hc:
            test = hc.get("test")
            text = " ".join(test[1:]) if isinstance(test, list) else str(test)
            for var in re.findall(r"(?<!\$)\$\{?([A-Za-z_][A-Za-z0-9_]*)", text):
                fail(f"service {name}: healthcheck uses ${var}, which compose expands on the host: write $${var}")
            for var in re.findall(r"\$\$\{?([A-Za-z_][A-Za-z0-9_]*)", text):
                if var not in env:
                    fail(f"service {name}: healthcheck uses {var}, which the service does not set")
        if long_running and svc.get("restart") != "unless-stopped":
            fail(f"service {name}: restart should be unless-stopped")
        if "ALL" not in as_list(svc.get("cap_drop")):
            fail(f"service {name}: cap_drop should be [ALL] (add back only what it needs)")
        for v in as_list(svc.get("volumes")):
            src = (v.get("source") if isinstance(v, dict) else str(v).split(":", 1)[0])
            if src and not src.startswith((".", "/", "~")) and src not in top_volumes:
                fail(f"service {name}: volume {src} is not declared under volumes:")
        for dep in (svc.get("depends_on") or {}):
            if dep not in services:
                fail(f"service {name}: depends_on {dep}, which is not a service")

    # 4. Addresses between services.
    def services_with(target):
        return [n for n, t in targets.items() if t == target]

    def val(name, var):
        return envs[name].get(var, (None, None))[0]

    dbs = [n for n, s in services.items() if str((s or {}).get("image", "")).split(":")[0] in ("mysql", "mariadb")]
    for name, target in targets.items():
        if target not in ("chatd", "coreapp", "webapp"):
            continue
        host, port = val(name, "WA_DB_HOSTNAME"), val(name, "WA_DB_PORT")
        if str(val(name, "WA_DB_ENGINE")).upper() != "MYSQL":
            # Without it a process with no database host would choose its
            # own SQLite file in its container: containers share nothing.
            fail(f"service {name}: WA_DB_ENGINE={val(name, 'WA_DB_ENGINE')}, want MYSQL (SQLite is one host's file)")
        if host not in dbs:
            fail(f"service {name}: WA_DB_HOSTNAME={host} is not the database service ({', '.join(dbs) or 'none'})")
        if port != str(MYSQL_PORT):
            fail(f"service {name}: WA_DB_PORT={port}, but mysqld listens on {MYSQL_PORT} in its container")
        if host in dbs and val(name, "WA_DB_USERNAME") == "root":
            root_pw = val(host, "MYSQL_ROOT_PASSWORD")
            if root_pw != val(name, "WA_DB_PASSWORD"):
                fail(f"service {name}: WA_DB_PASSWORD differs from MYSQL_ROOT_PASSWORD of {host}")

    core_dbs = {val(n, "WA_DB_NAME") for n in services_with("coreapp") + services_with("webapp")}
    if None in core_dbs or len(core_dbs) > 1:
        fail(f"coreapp and webapp must set the same WA_DB_NAME (found {sorted(map(str, core_dbs))})")
    for n in services_with("chatd"):
        if val(n, "WA_CHATD_DB_NAME") is None:
            fail(f"service {n}: set WA_CHATD_DB_NAME")
        elif val(n, "WA_CHATD_DB_NAME") in core_dbs:
            fail(f"service {n}: WA_CHATD_DB_NAME must not be the coreapp database")

    for n in services_with("coreapp"):
        chat = val(n, "WA_CHAT_HOST")
        if targets.get(chat) != "chatd":
            fail(f"service {n}: WA_CHAT_HOST={chat} is not a chatd service ({', '.join(services_with('chatd')) or 'none'})")
            continue
        for var in ("WA_CHAT_PORT", "WA_CHAT_FALLBACK_PORT"):
            if val(n, var) != val(chat, var):
                fail(f"service {n}: {var}={val(n, var)} but {chat} listens on {val(chat, var)}")

    # WA_CORE_ENDPOINT is a comma-separated list of host:port; every
    # coreapp service should be in it (or it never gets an API call).
    for n in services_with("webapp"):
        named = set()
        for ep in (val(n, "WA_CORE_ENDPOINT") or "").split(","):
            host, port = hostport(ep.strip())
            if targets.get(host) != "coreapp":
                fail(f"service {n}: WA_CORE_ENDPOINT entry {ep.strip()!r} does not name a coreapp service")
            elif port != val(host, "WA_CORE_PORT"):
                fail(f"service {n}: WA_CORE_ENDPOINT port {port} but {host} sets WA_CORE_PORT={val(host, 'WA_CORE_PORT')}")
            else:
                named.add(host)
        for c in services_with("coreapp"):
            if c not in named:
                fail(f"service {n}: WA_CORE_ENDPOINT does not list the coreapp service {c}")

    for n in services_with("waphone"):
        args = [str(a) for a in as_list(services[n].get("entrypoint")) + as_list(services[n].get("command"))]
        opts = {}
        for i, a in enumerate(args):
            if a.startswith("--") and "=" in a:
                opts[a.split("=", 1)[0]] = a.split("=", 1)[1]
            elif a.startswith("--") and i + 1 < len(args):
                opts[a] = args[i + 1]
        for addr in (opts.get("--network") or "").split(","):
            host, port = hostport(addr.strip())
            if targets.get(host) != "chatd":
                fail(f"service {n}: --network address {addr} is not a chatd service")
            elif port not in (val(host, "WA_CHAT_PORT"), val(host, "WA_CHAT_FALLBACK_PORT")):
                fail(f"service {n}: --network port {port} is not a chat port of {host}")
        if "--admin" in opts:
            host, port = hostport(opts["--admin"])
            if targets.get(host) != "chatd" or port != val(host, "WA_CHATD_ADMIN_PORT"):
                fail(f"service {n}: --admin {opts['--admin']} is not the admin API of a chatd service")
            elif val(host, "WA_CHATD_ADMIN_ADDR") != "0.0.0.0":
                fail(f"service {n}: --admin needs WA_CHATD_ADMIN_ADDR=0.0.0.0 on {host}")


    check_ha(compose, services, targets, envs, val, services_with)
    return compose

def volume_at(svc, path):
    """The source of what a service mounts at path (None if nothing)."""
    for v in as_list(svc.get("volumes")):
        if isinstance(v, dict):
            src, dst = v.get("source"), v.get("target")
        else:
            parts = str(v).split(":")
            src, dst = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
        if dst and os.path.normpath(dst) == os.path.normpath(path):
            return src
    return None

def is_named_volume(src):
    return bool(src) and not src.startswith((".", "/", "~"))

def check_ha(compose, services, targets, envs, val, services_with):
    """5. Several nodes side by side (docker-compose.ha.yml; any file)."""
    # A host port is published by one service only.
    published = {}
    for name, svc in services.items():
        for ip, host, cport in (parse_port(p) for p in as_list((svc or {}).get("ports"))):
            if host:
                if host in published and published[host] != name:
                    fail(f"service {name}: host port {host} is also published by {published[host]}")
                published.setdefault(host, name)

    cores = services_with("coreapp")
    for n in cores:
        adv = val(n, "WA_CORE_ADVERTISE_ADDR")
        if adv is not None:
            host, port = hostport(adv)
            if host in services and host != n:
                fail(f"service {n}: WA_CORE_ADVERTISE_ADDR={adv} names another service ({host})")
            elif port != val(n, "WA_CORE_PORT"):
                fail(f"service {n}: WA_CORE_ADVERTISE_ADDR port {port} but WA_CORE_PORT={val(n, 'WA_CORE_PORT')}")
    ids = {}
    for n in cores:
        node = val(n, "WA_NODE_ID")
        if node is None:
            continue
        if node in ids:
            fail(f"service {n}: WA_NODE_ID={node} is also the node id of {ids[node]}: each coreapp needs its own")
        ids[node] = n

    # The keystore secret: never written into the compose file; one secret
    # for every coreapp (the same WA_KEYSTORE_SECRET, or the same volume at
    # WA_DATA_DIR, where a coreapp without the variable makes and reads it).
    sources = {}
    for n in cores:
        env = envs[n]
        if "WA_KEYSTORE_SECRET" in env:
            value, origin = env["WA_KEYSTORE_SECRET"]
            if origin == "environment" and value and not value.startswith("${"):
                fail(f"service {n}: WA_KEYSTORE_SECRET is written into the compose file; put it in an env file "
                     "the operator keeps (deploy/keystore.env) or take it from the shell (${WA_KEYSTORE_SECRET})")
            if origin != "environment" and os.path.isfile(origin):
                try:
                    ok = len(base64.b64decode(value, validate=True)) == 32
                except ValueError:
                    ok = False
                if not ok:
                    fail(f"service {n}: WA_KEYSTORE_SECRET in {origin} is not base64 of 32 bytes "
                         "(make one with: head -c 32 /dev/urandom | base64)")
            sources[n] = f"WA_KEYSTORE_SECRET from {origin}" if origin != "environment" else f"WA_KEYSTORE_SECRET={value}"
        else:
            data_dir = val(n, "WA_DATA_DIR") or CORE_DEFAULT_DATA_DIR
            src = volume_at(services[n] or {}, data_dir)
            sources[n] = f"volume {src} at WA_DATA_DIR" if is_named_volume(src) else None
    if len(cores) > 1:
        for n in cores:
            if sources[n] is None:
                fail(f"service {n}: {len(cores)} coreapps need one keystore secret: set WA_KEYSTORE_SECRET "
                     "(deploy/keystore.env), or mount one shared volume at WA_DATA_DIR")
        if len({v for v in sources.values() if v}) > 1:
            fail("the coreapps do not share one keystore secret: " +
                 ", ".join(f"{n}: {sources[n]}" for n in cores))

    # The media volume: one named volume at every coreapp's WA_MEDIA_DIR.
    if len(cores) > 1:
        media = {}
        for n in cores:
            src = volume_at(services[n] or {}, val(n, "WA_MEDIA_DIR") or CORE_DEFAULT_MEDIA_DIR)
            if not is_named_volume(src):
                fail(f"service {n}: mount the shared media volume at WA_MEDIA_DIR "
                     f"({val(n, 'WA_MEDIA_DIR') or CORE_DEFAULT_MEDIA_DIR})")
            media[n] = src
        if len({v for v in media.values() if is_named_volume(v)}) > 1:
            fail("the coreapps do not share one media volume: " + ", ".join(f"{n}: {v}" for n, v in media.items()))

# ------------------------------------------------------- run them all ----
parsed = {}
for path in COMPOSE_FILES:
    parsed[path] = check(path)
COMPOSE, PREFIX = COMPOSE_FILES[0], ""

# The HA file runs the same deployment: same project (so the same volumes)
# and the same db, chatd and waphone.
main, ha = (parsed[p] for p in COMPOSE_FILES)
if main and ha:
    PREFIX = COMPOSE_FILES[1] + ": "
    if main.get("name") != ha.get("name"):
        fail(f"project name {ha.get('name')!r} is not {COMPOSE_FILES[0]}'s {main.get('name')!r}: "
             "the two files must run one deployment on the same volumes")
    for n in SHARED_SERVICES:
        a, b = (main.get("services") or {}).get(n), (ha.get("services") or {}).get(n)
        if a != b:
            fail(f"service {n} differs from the one in {COMPOSE_FILES[0]}: keep them identical")
    for v, spec in (ha.get("volumes") or {}).items():
        if v in (main.get("volumes") or {}) and spec != main["volumes"][v]:
            fail(f"volume {v} is declared differently from {COMPOSE_FILES[0]}")
    PREFIX = ""

if errors:
    for e in errors:
        print("check-compose: " + e, file=sys.stderr)
    print(f"check-compose: {len(errors)} problem(s)", file=sys.stderr)
    sys.exit(1)
counts = ", ".join(f"{p} ({len((c or {}).get('services') or {})} services)" for p, c in parsed.items())
print(f"check-compose: ok ({counts}, deploy/db.env, {DOCKERFILE})")
PY
