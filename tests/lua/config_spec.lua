local support = require("support.doubles")
local files = require("support")
local config = require("trainctl.config")
local errors = require("trainctl.errors")
local log = require("trainctl.log")

local function write(path, text, mode)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  assert(os.execute(("chmod %s '%s'"):format(mode, path)))
end

describe("trainctl.config", function()
  local dir, cleanup, restore
  before_each(function()
    dir, cleanup = files.tmpdir()
    os.execute("mkdir -p '" .. dir .. "/trainctl'")
  end)
  after_each(function()
    if restore then restore() end
    cleanup()
    log._reset()
  end)

  it("reads the environment first", function()
    restore = support.env({ NCLOUD_ACCESS_KEY = "from-env", XDG_CONFIG_HOME = dir })
    write(dir .. "/trainctl/credentials", "[default]\nNCLOUD_ACCESS_KEY = from-file\n", "600")
    assert.same({ "from-env", "env" }, { config.get("NCLOUD_ACCESS_KEY") })
  end)

  it("falls back to the profile, names matched in any case", function()
    restore = support.env({ XDG_CONFIG_HOME = dir, TRAINCTL_PROFILE = "prod" })
    write(dir .. "/trainctl/credentials", "# keys\n[default]\nncloud_access_key = d\n\n[prod]\n"
      .. "NCLOUD_ACCESS_KEY = \"p-key\"\nncloud_secret_key=p-secret-value\n", "600")
    assert.same({ "p-key", "profile" }, { config.get("NCLOUD_ACCESS_KEY") })
    assert.equal("p-secret-value", config.need("NCLOUD_SECRET_KEY"))
    assert.equal("x [REDACTED]", log.redact("x p-secret-value"))
  end)

  it("uses [default] when no profile is named", function()
    restore = support.env({ XDG_CONFIG_HOME = dir })
    write(dir .. "/trainctl/credentials", "[default]\nNCLOUD_ACCESS_KEY = d\n", "600")
    assert.equal("d", config.get("NCLOUD_ACCESS_KEY"))
  end)

  it("refuses a credentials file others can read", function()
    restore = support.env({ XDG_CONFIG_HOME = dir })
    write(dir .. "/trainctl/credentials", "[default]\nNCLOUD_ACCESS_KEY = d\n", "644")
    local ok, err = pcall(config.get, "NCLOUD_ACCESS_KEY")
    assert.is_false(ok)
    assert.is_true(errors.is(err, "usage"))
    assert.matches("chmod 600", err.message)
    assert.matches("0644", err.message)
  end)

  it("reports a named profile that does not exist", function()
    restore = support.env({ XDG_CONFIG_HOME = dir, TRAINCTL_PROFILE = "nope" })
    write(dir .. "/trainctl/credentials", "[default]\n", "600")
    local ok, err = pcall(config.get, "NCLOUD_ACCESS_KEY")
    assert.is_false(ok)
    assert.matches("no profile %[nope%]", err.message)
    os.remove(dir .. "/trainctl/credentials")
    config._reset()
    config.getenv = function(n) return ({ XDG_CONFIG_HOME = dir, TRAINCTL_PROFILE = "nope" })[n] end
    ok, err = pcall(config.get, "NCLOUD_ACCESS_KEY")
    assert.is_false(ok)
    assert.matches("does not exist", err.message)
  end)

  it("makes a missing credential a usage error naming the variable", function()
    restore = support.env({ XDG_CONFIG_HOME = dir })
    local ok, err = pcall(config.need, "ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    assert.is_false(ok)
    assert.equal("usage", err.kind)
    assert.matches("set ALIBABA_CLOUD_ACCESS_KEY_SECRET", err.message)
  end)

  it("falls back to ~/.config without XDG_CONFIG_HOME", function()
    restore = support.env({ HOME = "/home/u" })
    assert.equal("/home/u/.config/trainctl/credentials", config.credentials_path())
  end)

  it("registers the etcd password and every password or token of the file before any use", function()
    restore = support.env({ XDG_CONFIG_HOME = dir, TRAINCTL_ETCD_PASSWORD = "etcdpw123", ETCD_PASSWORD = "etcdpw456" })
    write(dir .. "/trainctl/credentials", "[default]\nTRAINCTL_ETCD_PASSWORD = filepw789\n"
      .. "[other]\nmy_token = tok-from-file\n", "600")
    log._reset()
    assert.equal("x [REDACTED] [REDACTED] [REDACTED] [REDACTED]",
      log.redact("x etcdpw123 etcdpw456 filepw789 tok-from-file"))
  end)

  it("refuses a credentials file that is a directory or a FIFO, without waiting for a writer", function()
    restore = support.env({ XDG_CONFIG_HOME = dir })
    local path = dir .. "/trainctl/credentials"
    for _, make in ipairs({ "mkdir -m 700 '%s'", "mkfifo -m 600 '%s'" }) do
      config._reset()
      config.getenv = function(n) return ({ XDG_CONFIG_HOME = dir })[n] end
      assert(os.execute(make:format(path)))
      local ok, err = pcall(config.get, "NCLOUD_ACCESS_KEY")
      assert.is_false(ok)
      assert.is_true(errors.is(err, "usage"), tostring(err))
      assert.matches("is not a regular file", err.message)
      os.execute(("rm -rf '%s'"):format(path))
    end
  end)

  it("refuses a credential with a control character, naming the variable and never the value", function()
    restore = support.env({ NCLOUD_ACCESS_KEY = "pasted-access-key\r", XDG_CONFIG_HOME = dir })
    local ok, err = pcall(config.need, "NCLOUD_ACCESS_KEY")
    assert.is_false(ok)
    assert.is_true(errors.is(err, "usage"), tostring(err))
    assert.equal("NCLOUD_ACCESS_KEY contains a control character (a trailing \\r?)", err.message)
    restore()
    restore = support.env({ XDG_CONFIG_HOME = dir })
    write(dir .. "/trainctl/credentials", "[default]\nNCLOUD_SECRET_KEY = in\tthe-file\n", "600")
    ok, err = pcall(config.need, "NCLOUD_SECRET_KEY")
    assert.is_false(ok)
    assert.equal("NCLOUD_SECRET_KEY in profile 'default' contains a control character", err.message)
  end)

  describe("endpoint", function()
    local function refused(url)
      local ok, err = pcall(config.endpoint, "aitems", url, "TRAINCTL_AITEMS_ENDPOINT", "/api/v1")
      assert.is_false(ok, url)
      assert.is_true(errors.is(err, "usage"), tostring(err))
      assert.matches("TRAINCTL_AITEMS_ENDPOINT", err.message, 1, true)
      return err.message
    end

    it("refuses a user:password without echoing the password", function()
      for _, url in ipairs({ "http://bob:hunter2pw@127.0.0.1:8080/api/v1", "bob:hunter2pw@h/api/v1",
        "https://hunter2pw@h" }) do
        local msg = refused(url)
        assert.not_matches("hunter2pw", msg)
        assert.matches("user information", msg)
      end
    end)

    it("refuses a host or a port libcurl could not use, naming the setting", function()
      assert.matches("space or a control character", refused("http://a b/api/v1"))
      assert.matches("space or a control character", refused("http://h/api/v1\r"))
      assert.matches("from 1 to 65535", refused("http://127.0.0.1:99999/api/v1"))
      assert.matches("from 1 to 65535", refused("http://127.0.0.1:0/api/v1"))
      assert.matches("from 1 to 65535", refused("http://h:8o/api/v1"))
      assert.matches("not a host name", refused("http://-h/api/v1"))
      assert.matches("not a host name", refused("http://h%41/api/v1"))
      assert.matches("no host", refused("http:"))
      assert.matches("no host", refused("http://:8080/api/v1"))
    end)

    it("takes host names, addresses and ports", function()
      for _, url in ipairs({ "http://127.0.0.1:8080/api/v1", "https://aitems.apigw.ntruss.com/api/v1",
        "http://[::1]:9/api/v1", "http://LOCALHOST/api/v1", "https://my_host.example:65535/api/v1",
        -- an IPv6 zone, and an empty port (the scheme's), as curl takes them
        "http://[fe80::fc:ff:fe00:1%25eth0]:9/api/v1", "http://[::1%25lo]/api/v1", "https://example.com:/api/v1" }) do
        assert.equal(url, config.endpoint("aitems", url, "X", "/api/v1"))
      end
    end)
  end)

  it("rejects malformed INI with the line number", function()
    local ok, err = config.parse_ini("[a]\nnot a pair\n")
    assert.is_nil(ok)
    assert.matches("line 2", err)
  end)
end)
