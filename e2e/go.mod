module github.com/openwaba/openwaba/e2e

go 1.26.8

require (
	github.com/chromedp/cdproto v0.160.1
	github.com/chromedp/chromedp v0.23.1
	github.com/google/go-cmp v0.7.0
	github.com/openwaba/openwaba/api v0.0.0
	github.com/openwaba/openwaba/chatd v0.0.0
	github.com/openwaba/openwaba/db v0.0.0
	google.golang.org/grpc v1.85.0
)

require (
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dustin/go-humanize v1.1.0 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/labstack/echo/v4 v4.16.0 // indirect
	github.com/labstack/gommon v0.5.0 // indirect
	github.com/mattn/go-colorable v0.1.15 // indirect
	github.com/mattn/go-isatty v0.0.24 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/ncruces/go-strftime v1.1.0 // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	github.com/prometheus/client_model v0.6.3 // indirect
	github.com/prometheus/common v0.72.0 // indirect
	github.com/prometheus/procfs v0.22.0 // indirect
	github.com/remyoudompheng/bigfft v0.0.0-20230129092748-24d4a6f8daec // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	github.com/valyala/fasttemplate v1.2.2 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/time v0.15.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20261005182115-fad411399dd8 // indirect
	modernc.org/libc v1.80.1 // indirect
	modernc.org/mathutil v1.7.1 // indirect
	modernc.org/memory v1.12.1 // indirect
	modernc.org/sqlite v1.62.0 // indirect
)

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	github.com/flynn/noise v1.1.0 // indirect
	github.com/go-sql-driver/mysql v1.10.1
	github.com/mfridman/interpolate v0.0.2 // indirect
	github.com/openwaba/openwaba/coreapp v0.0.0
	github.com/openwaba/openwaba/media v0.0.0
	github.com/openwaba/openwaba/proto v0.0.0
	github.com/openwaba/openwaba/webapp v0.0.0
	github.com/pressly/goose/v3 v3.29.0 // indirect
	github.com/sethvargo/go-retry v0.5.0 // indirect
	go.mau.fi/libsignal v0.2.2 // indirect
	go.uber.org/multierr v1.11.0 // indirect
	golang.org/x/crypto v0.58.0
	golang.org/x/net v0.61.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace (
	github.com/openwaba/openwaba/chatd => ../chatd
	github.com/openwaba/openwaba/coreapp => ../coreapp
	github.com/openwaba/openwaba/db => ../db
	github.com/openwaba/openwaba/proto => ../proto
	github.com/openwaba/openwaba/webapp => ../webapp
)

replace github.com/openwaba/openwaba/media => ../media

replace github.com/openwaba/openwaba/api => ../api
