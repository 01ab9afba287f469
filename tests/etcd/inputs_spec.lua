-- What a user sees when the etcd side is wrong: a malformed URL, a host
-- that does not resolve, nobody listening, a wrong password, a wrong CA,
-- a missing client certificate. One line each, the documented exit status
-- (2: fix the configuration; 1: the environment failed), no traceback,
-- and no secret in anything printed, at --log-level trace too.
local support = require("support")
local cloudsim = require("support.cloudsim")
local etcd_support = require("support.etcd")

local HELLO = "tests/etcd/hello.lua"
local PASSWORD = "rootpw-s3cret-9431"

local function one_line(err)
  local n = select(2, err:gsub("\n", ""))
  assert.equal(1, n, err)
  assert.is_nil(err:find("traceback", 1, true), err)
  assert.matches("^trainctl: ", err)
end

describe("etcd settings that are wrong", function()
  local dir
  setup(function() dir = support.tmpdir() end)
  teardown(function() support.rmdir(dir) end)

  local function run(args, env)
    local e = { HOME = dir, XDG_CONFIG_HOME = dir .. "/config", XDG_STATE_HOME = dir .. "/state" }
    for k, v in pairs(env or {}) do e[k] = v end
    return etcd_support.run(args, e, dir)
  end

  for _, url in ipairs({ "etcd://", "etcd://127.0.0.1:2379", "etcd://127.0.0.1:2379/",
    "etcd://127.0.0.1:70000/k", "etcd://root:" .. PASSWORD .. "@127.0.0.1:2379/k",
    "etcd://127.0.0.1:2379/k?x=1", "etcd://,/k" }) do
    it("a malformed URL (" .. url .. ") is a usage error, exit 2", function()
      local code, out, err = run({ "--lock", url, HELLO })
      assert.equal(2, code, err)
      assert.equal("", out)
      one_line(err)
      assert.matches("bad etcd URL", err)
      assert.is_nil(err:find(PASSWORD, 1, true))
    end)
  end

  it("--lock-ttl or --lock-wait without an etcd lock is a usage error", function()
    local code, _, err = run({ "--lock", dir .. "/file.lock", "--lock-ttl", "10s", HELLO })
    assert.equal(2, code, err)
    assert.matches("need an etcd:// or etcds:// %-%-lock", err)
    code, _, err = run({ "--lock", "etcd://127.0.0.1:1/k", "--lock-ttl", "1", HELLO })
    assert.equal(2, code, err)
    assert.matches("from 2s to 1h", err)
  end)

  it("an unknown host or nobody listening: exit 1, naming what was tried", function()
    local code, out, err = run({ "--lock", "etcd://no-such-host.invalid:2379/k", "--lock-ttl", "2", HELLO })
    assert.equal(1, code, err)
    assert.equal("", out)
    one_line(err)
    assert.matches("no member of etcd://no%-such%-host.invalid:2379/k answered", err)
    assert.matches("resolve", err)
    local port = etcd_support.free_ports(1)[1]
    code, out, err = run({ "--lock", "etcd://127.0.0.1:" .. port .. "/k", "--lock-ttl", "2", HELLO })
    assert.equal(1, code, err)
    assert.equal("", out)
    one_line(err)
    assert.matches("connect", err)
  end)

  describe("with authentication on", function()
    if not etcd_support.available() then
      pending("etcd-server is not installed")
      return
    end
    local cluster
    setup(function()
      cluster = etcd_support.cluster({ size = 1 })
      local ep = "--endpoints=" .. cluster:host(1)
      assert.equal(0, support.exec(("etcdctl %s user add root --new-user-password=%s >/dev/null 2>&1")
        :format(ep, PASSWORD)))
      assert.equal(0, support.exec(("etcdctl %s auth enable >/dev/null 2>&1"):format(ep)))
    end)
    teardown(function() if cluster then cluster:stop() end end)

    local function url() return cluster:url("auth/lock", { 1 }) end

    it("no user: exit 2, saying which settings to make", function()
      local code, out, err = run({ "--lock", url(), HELLO })
      assert.equal(2, code, err)
      assert.equal("", out)
      one_line(err)
      assert.matches("set TRAINCTL_ETCD_USERNAME and TRAINCTL_ETCD_PASSWORD", err)
    end)

    it("a wrong password: exit 2, the password nowhere, at trace level too", function()
      local wrong = "not-the-password-5521"
      local code, out, err = run({ "--log-level", "trace", "--lock", url(), HELLO },
        { TRAINCTL_ETCD_USERNAME = "root", TRAINCTL_ETCD_PASSWORD = wrong })
      assert.equal(2, code, err)
      assert.equal("", out)
      assert.matches("trainctl: etcd: usage error .*: etcd refused the user \"root\"", err)
      assert.is_nil((out .. err):find(wrong, 1, true))
    end)

    it("the right password, from the environment or the credentials file; password and token redacted", function()
      local code, out, err = run({ "--log-level", "trace", "--lock", url(), HELLO },
        { TRAINCTL_ETCD_USERNAME = "root", TRAINCTL_ETCD_PASSWORD = PASSWORD })
      assert.equal(0, code, err)
      assert.equal("ran\n", out)
      assert.matches("/v3/auth/authenticate", err)
      assert.matches("authorization", err)
      assert.is_nil(err:find(PASSWORD, 1, true))
      -- etcd's simple tokens: 16 letters, a dot, a number
      assert.is_nil(err:find("%f[%w]" .. ("%a"):rep(16) .. "%.%d+"), err)
      os.execute("mkdir -p " .. support.quote(dir .. "/config/trainctl"))
      support.write(dir .. "/config/trainctl/credentials",
        ("[default]\nTRAINCTL_ETCD_USERNAME = root\nTRAINCTL_ETCD_PASSWORD = %s\n"):format(PASSWORD))
      os.execute("chmod 600 " .. support.quote(dir .. "/config/trainctl/credentials"))
      code, out, err = run({ "--lock", url(), HELLO })
      os.remove(dir .. "/config/trainctl/credentials")
      assert.equal(0, code, err)
      assert.equal("ran\n", out)
    end)
  end)

  describe("over TLS (etcds://) with client certificates", function()
    if not etcd_support.available() then
      pending("etcd-server is not installed")
      return
    end
    local cluster, certs, cert, key
    setup(function()
      certs = cloudsim.certificates(dir)
      cluster = etcd_support.cluster({ size = 1, tls = certs })
      cert, key = cluster.cert, cluster.key
    end)
    teardown(function() if cluster then cluster:stop() end end)

    local function url() return cluster:url("tls/lock", { 1 }) end

    it("the right CA and a client certificate: the lock is taken", function()
      local code, out, err = run({ "--lock", url(), HELLO }, { TRAINCTL_ETCD_CA_FILE = certs.ca,
        TRAINCTL_ETCD_CERT_FILE = cert, TRAINCTL_ETCD_KEY_FILE = key })
      assert.equal(0, code, err)
      assert.equal("ran\n", out)
    end)

    it("a wrong CA: exit 1, a TLS error at once", function()
      local code, out, err = run({ "--lock", url(), HELLO }, { TRAINCTL_ETCD_CA_FILE = certs.other_ca,
        TRAINCTL_ETCD_CERT_FILE = cert, TRAINCTL_ETCD_KEY_FILE = key })
      assert.equal(1, code, err)
      assert.equal("", out)
      one_line(err)
      assert.matches("tls error", err)
    end)

    it("no client certificate: refused by etcd, exit 1, saying what to set", function()
      local code, out, err = run({ "--lock", url(), "--lock-ttl", "2", HELLO },
        { TRAINCTL_ETCD_CA_FILE = certs.ca })
      assert.equal(1, code, err)
      assert.equal("", out)
      one_line(err)
      assert.matches("tls error: .*etcd wants a client certificate: set TRAINCTL_ETCD_CERT_FILE", err)
    end)

    it("a CA file or certificate that cannot be read: exit 2", function()
      local code, _, err = run({ "--lock", url(), HELLO }, { TRAINCTL_ETCD_CA_FILE = dir .. "/nope.pem" })
      assert.equal(2, code, err)
      one_line(err)
      assert.matches("etcd CA file .*nope.pem cannot be read", err)
      code, _, err = run({ "--lock", url(), HELLO }, { TRAINCTL_ETCD_CA_FILE = certs.ca,
        TRAINCTL_ETCD_CERT_FILE = cert })
      assert.equal(2, code, err)
      assert.matches("needs both", err)
    end)
  end)
end)
