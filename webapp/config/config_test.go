package config_test

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/openwaba/openwaba/db"
	"github.com/openwaba/openwaba/webapp/config"
)

var allVars = []string{
	"WA_DB_ENGINE", "WA_DB_HOSTNAME", "WA_DB_PORT", "WA_DB_USERNAME", "WA_DB_PASSWORD", "WA_DB_NAME", "WA_DB_MAX_OPEN_CONNS",
	"WA_WEB_PORT", "WA_WEB_ADDR", "WA_WEB_SERVERNAME", "WA_CORE_ENDPOINT", "WA_API_KEY",
	"WA_LOG_FORMAT", "WA_LOG_LEVEL", "WA_CONFIG_FILE", "WA_DB_DIR", "WA_DATA_DIR",
	"WA_WEB_MAX_CONNS_PER_IP", "WA_KEYSTORE_SECRET",
}

// clearEnv unsets every variable Load reads, for the test's duration.
func clearEnv(t *testing.T) {
	for _, v := range allVars {
		t.Setenv(v, "")
	}
}

func defaults() config.Config {
	return config.Config{
		DB: db.Config{Engine: "SQLITE", Hostname: "127.0.0.1", Port: 3306, Username: "root", Name: "openwaba", MaxOpenConns: 32,
			Dir: "data", Path: filepath.Join("data", "openwaba.db")},
		Web:     config.Web{Addr: "0.0.0.0", Port: 9090, ServerName: "localhost", MaxConnsPerIP: 256, RateMessages: "50/150", RateDefault: "20/60"},
		Core:    config.Core{Endpoints: []string{"127.0.0.1:6250"}},
		Log:     config.Log{Format: "json", Level: "info"},
		DataDir: "data",
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	yamlFile := filepath.Join(dir, "webapp.yaml")
	if err := os.WriteFile(yamlFile, []byte("db:\n  hostname: db.internal\n  password: from-file\nweb:\n  port: 443\nlog:\n  level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	listFile := filepath.Join(dir, "list.yaml")
	if err := os.WriteFile(listFile, []byte("core:\n  endpoint: [core1:6250, core2:6250]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stringFile := filepath.Join(dir, "string.yaml")
	if err := os.WriteFile(stringFile, []byte("core:\n  endpoint: \"core1:6250, core2:6250\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		terminal bool
		want     func(*config.Config)
		wantErr  string
	}{
		{name: "defaults", want: func(*config.Config) {}},
		{name: "text on a terminal", terminal: true, want: func(c *config.Config) { c.Log.Format = "text" }},
		{
			name: "environment",
			env: map[string]string{
				"WA_DB_ENGINE": "mysql", "WA_DB_HOSTNAME": "mysql", "WA_DB_PORT": "3307", "WA_DB_USERNAME": "wa",
				"WA_DB_PASSWORD": "pw", "WA_DB_NAME": "waba", "WA_DB_MAX_OPEN_CONNS": "8", "WA_WEB_PORT": "9443", "WA_WEB_ADDR": "127.0.0.1",
				"WA_WEB_SERVERNAME": "waba.example", "WA_CORE_ENDPOINT": "coreapp:6250", "WA_API_KEY": "monitoring-key",
				"WA_LOG_FORMAT": "TEXT", "WA_LOG_LEVEL": "WARN", "WA_WEB_MAX_CONNS_PER_IP": "0", "WA_KEYSTORE_SECRET": "c2VjcmV0",
				"WA_RATE_LIMIT_MESSAGES": "off", "WA_RATE_LIMIT_DEFAULT": "5/10",
			},
			want: func(c *config.Config) {
				c.DB = db.Config{Engine: "MYSQL", Hostname: "mysql", Port: 3307, Username: "wa", Password: "pw", Name: "waba", MaxOpenConns: 8, Dir: "data"}
				c.Web = config.Web{Addr: "127.0.0.1", Port: 9443, ServerName: "waba.example", MaxConnsPerIP: 0, RateMessages: "off", RateDefault: "5/10"}
				c.KeystoreSecret = "c2VjcmV0"
				c.Core.Endpoints = []string{"coreapp:6250"}
				c.APIKey = "monitoring-key"
				c.Log = config.Log{Format: "text", Level: "warn"}
			},
		},
		{
			name: "file by flag, environment wins",
			args: []string{"--config", yamlFile},
			env:  map[string]string{"WA_DB_PASSWORD": "from-env"},
			want: func(c *config.Config) {
				c.DB.Hostname, c.DB.Password, c.Web.Port, c.Log.Level = "db.internal", "from-env", 443, "debug"
				c.DB.Engine, c.DB.Path = "MYSQL", "" // a database host selects MySQL
			},
		},
		{
			name: "file by WA_CONFIG_FILE",
			env:  map[string]string{"WA_CONFIG_FILE": yamlFile},
			want: func(c *config.Config) {
				c.DB.Hostname, c.DB.Password, c.Web.Port, c.Log.Level = "db.internal", "from-file", 443, "debug"
				c.DB.Engine, c.DB.Path = "MYSQL", ""
			},
		},
		{
			name: "SQLite file in the data dir",
			env:  map[string]string{"WA_DATA_DIR": "/var/lib/wa", "WA_DB_NAME": "biz"},
			want: func(c *config.Config) {
				c.DB.Name, c.DB.Dir, c.DB.Path, c.DataDir = "biz", "/var/lib/wa", "/var/lib/wa/biz.db", "/var/lib/wa"
			},
		},
		{
			name: "SQLite file in WA_DB_DIR",
			env:  map[string]string{"WA_DATA_DIR": "/var/lib/wa", "WA_DB_DIR": "/db", "WA_DB_ENGINE": "sqlite"},
			want: func(c *config.Config) { c.DB.Dir, c.DB.Path, c.DataDir = "/db", "/db/openwaba.db", "/var/lib/wa" },
		},
		{
			name: "MySQL chosen explicitly",
			env:  map[string]string{"WA_DB_ENGINE": "MYSQL"},
			want: func(c *config.Config) { c.DB.Engine, c.DB.Path = "MYSQL", "" },
		},
		{name: "missing file", args: []string{"--config", filepath.Join(dir, "nope.yaml")}, wantErr: "nope.yaml"},
		{name: "stray argument", args: []string{"serve"}, wantErr: "unexpected arguments"},
		{name: "unknown flag", args: []string{"--port", "1"}, wantErr: "flag provided but not defined"},
		{name: "short API key", env: map[string]string{"WA_API_KEY": "short"}, wantErr: "WA_API_KEY must be 12 to 128"},
		{name: "bad rate limit", env: map[string]string{"WA_RATE_LIMIT_MESSAGES": "fast"}, wantErr: "WA_RATE_LIMIT_MESSAGES"},
		{name: "long API key", env: map[string]string{"WA_API_KEY": strings.Repeat("k", 129)}, wantErr: "WA_API_KEY must be 12 to 128"},
		{name: "negative connection cap", env: map[string]string{"WA_WEB_MAX_CONNS_PER_IP": "-1"}, wantErr: "WA_WEB_MAX_CONNS_PER_IP"},
		{name: "bad port", env: map[string]string{"WA_WEB_PORT": "70000"}, wantErr: "WA_WEB_PORT"},
		{name: "port not a number", env: map[string]string{"WA_WEB_PORT": "https"}, wantErr: "decode config"},
		{name: "bad log format", env: map[string]string{"WA_LOG_FORMAT": "xml"}, wantErr: "WA_LOG_FORMAT"},
		{name: "bad log level", env: map[string]string{"WA_LOG_LEVEL": "loud"}, wantErr: "WA_LOG_LEVEL"},
		{name: "bad engine", env: map[string]string{"WA_DB_ENGINE": "oracle"}, wantErr: "WA_DB_ENGINE"},
		{name: "bad core endpoint", env: map[string]string{"WA_CORE_ENDPOINT": "coreapp"}, wantErr: "WA_CORE_ENDPOINT"},
		{
			name: "several core endpoints",
			env:  map[string]string{"WA_CORE_ENDPOINT": "core1:6250, core2:6250 ,10.0.0.9:6251,[fd00::7]:6250"},
			want: func(c *config.Config) {
				c.Core.Endpoints = []string{"core1:6250", "core2:6250", "10.0.0.9:6251", "[fd00::7]:6250"}
			},
		},
		{
			name: "core endpoints as a list in the file",
			args: []string{"--config", listFile},
			want: func(c *config.Config) { c.Core.Endpoints = []string{"core1:6250", "core2:6250"} },
		},
		{
			name: "core endpoints as one string in the file",
			args: []string{"--config", stringFile},
			want: func(c *config.Config) { c.Core.Endpoints = []string{"core1:6250", "core2:6250"} },
		},
		{name: "empty core endpoint entry", env: map[string]string{"WA_CORE_ENDPOINT": "core1:6250,,core2:6250"}, wantErr: "entry 2 is empty"},
		{name: "trailing comma", env: map[string]string{"WA_CORE_ENDPOINT": "core1:6250,"}, wantErr: "entry 2 is empty"},
		{name: "core endpoint without port in a list", env: map[string]string{"WA_CORE_ENDPOINT": "core1:6250,core2"}, wantErr: `"core2" is not host:port`},
		{name: "core endpoint with a scheme", env: map[string]string{"WA_CORE_ENDPOINT": "dns:///core1:6250"}, wantErr: "WA_CORE_ENDPOINT"},
		{name: "core endpoint port out of range", env: map[string]string{"WA_CORE_ENDPOINT": "core1:99999"}, wantErr: "port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			got, err := config.Load(tt.args, tt.terminal, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := defaults()
			tt.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Load mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLogValueRedactsSecrets(t *testing.T) {
	c := defaults()
	c.Core.Endpoints = []string{"127.0.0.1:6250", "core2:6250"}
	c.DB.Engine, c.DB.Password = "MYSQL", "db-secret-pw"
	c.APIKey = "monitoring-secret"
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	out := buf.String()
	for _, secret := range []string{"db-secret-pw", "monitoring-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("log line %s contains the secret %q", out, secret)
		}
	}
	for _, visible := range []string{`"hostname":"127.0.0.1"`, `"port":9090`, `"api_key":"********"`, `"core_endpoint":"127.0.0.1:6250,core2:6250"`} {
		if !strings.Contains(out, visible) {
			t.Errorf("log line %s lacks %s", out, visible)
		}
	}
}
