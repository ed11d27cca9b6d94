# Shared by bench/dns.sh and bench/dns-instructions.sh (sourced, not run): the same records for
# devenv and dnsmasq, and the query mix.

# dns_inputs DIR: writes DIR/devenv.yaml (the defaults: infrastructure names -> 127.0.0.1,
# everything else -> 127.0.0.2), DIR/dnsmasq.conf with the same records (the domain's
# wildcard, then the more specific names) and DIR/queries.txt (infrastructure names,
# application names, and AAAA (NODATA) questions).
dns_inputs() {
  local dir=$1 n
  local infra=(registry registry-ui dns dns-admin prometheus loki tempo grafana s3 s3-console postgres draw)
  : > "$dir/devenv.yaml"
  {
    echo "address=/macula.local/127.0.0.2"
    for n in "${infra[@]}"; do echo "address=/$n.macula.local/127.0.0.1"; done
  } > "$dir/dnsmasq.conf"
  {
    for n in "${infra[@]}"; do echo "$n.macula.local A"; done
    for n in shop api web checkout auth catalog; do echo "$n.macula.local A"; done
    echo "grafana.macula.local AAAA"
    echo "shop.macula.local AAAA"
  } > "$dir/queries.txt"
}
