/* tfq dashboard: the queue in a browser (dashboard.h, schema/HTTP.md). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common/stop.h"
#include "common/text.h"
#include "dashboard.h"
#include "report_grid.h"

#define DEFAULT_LISTEN "127.0.0.1:8080"
/* A token shorter than this is refused: it could be guessed. */
#define MIN_TOKEN_BYTES 16
/* How often the wait for a signal looks at the stop flag. */
#define STOP_POLL_NS 100000000L

void cmd_dashboard_help(FILE *out)
{
    fputs("usage: tfq dashboard [--connect ADDR] [--listen HOST:PORT] "
          "[--token-file F]\n"
          "                     [--tls-cert F --tls-key F] [--url-file F]\n\n"
          "Serves the queue to a browser, read-only: the grids and their "
          "jobs, workers,\nevents, Figures 2 and 3 and Table 1, a JSON API "
          "(/api/) and Prometheus\nmetrics (/metrics); schema/HTTP.md "
          "says each route.  It asks the coordinator\nat most once a second "
          "per distinct request, and says \"coordinator unreachable\"\n"
          "while it is away.\n"
          CLI_CONNECT_HELP
          "  --listen HOST:PORT  where to serve (default " DEFAULT_LISTEN
          "; port 0 picks a\n"
          "                      free one; HOST a numeric address, [::1] "
          "for IPv6); an\n"
          "                      address not of loopback needs "
          "--token-file and TLS\n"
          "  --token-file F      every request must carry Authorization: "
          "Bearer TOKEN,\n"
          "                      the file's text (at least 16 bytes); "
          "the page takes it\n"
          "                      from its URL's #token=TOKEN\n"
          "  --tls-cert F        HTTPS with this PEM certificate (chain) "
          "and\n"
          "  --tls-key F         this PEM private key\n"
          "  --url-file F        write the URL served (with the port "
          "chosen) to F\n"
          "  -h, --help          this text\n"
          "SIGTERM/SIGINT: stops serving and exits 0.\n", out);
}

typedef struct {
    const char *connect, *listen, *token_file, *cert, *key, *url_file;
} dash_opts;

static int parse(int argc, char **argv, dash_opts *a)
{
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'},
        {"listen", required_argument, 0, 'l'},
        {"token-file", required_argument, 0, 't'},
        {"tls-cert", required_argument, 0, 'C'},
        {"tls-key", required_argument, 0, 'K'},
        {"url-file", required_argument, 0, 'u'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': a->connect = optarg; break;
        case 'l': a->listen = optarg; break;
        case 't': a->token_file = optarg; break;
        case 'C': a->cert = optarg; break;
        case 'K': a->key = optarg; break;
        case 'u': a->url_file = optarg; break;
        case 'h': cmd_dashboard_help(stdout); return 1;
        default: return -1;
        }
    }
    if (cli_no_more_args("dashboard", argc, argv) != 0)
        return -1;
    if ((a->cert == NULL) != (a->key == NULL)) {
        fprintf(stderr, "tfq dashboard: --tls-cert and --tls-key go "
                "together (HTTPS needs both)\n");
        return -1;
    }
    return 0;
}

/* HOST:PORT (or [HOST]:PORT) into host and *port; -1 with a message. */
static int split_listen(const char *s, char *host, size_t bytes, long *port)
{
    const char *colon = strrchr(s, ':');
    const char *h = s;
    size_t n = colon != NULL ? (size_t)(colon - s) : 0;
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        h = s + 1;
        n -= 2;
    }
    if (colon == NULL || n == 0 || n >= bytes) {
        fprintf(stderr, "tfq dashboard: --listen: bad value '%s' (expected "
                "HOST:PORT, e.g. " DEFAULT_LISTEN " or [::1]:8080)\n", s);
        return -1;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    if (strcmp(host, "localhost") == 0)
        snprintf(host, bytes, "127.0.0.1");
    if (cli_int("dashboard", "--listen's port", colon + 1, 0, 65535, port))
        return -1;
    if (dashboard_is_loopback(host) < 0) {
        fprintf(stderr, "tfq dashboard: --listen: '%s' is not a numeric "
                "IPv4 or IPv6 address\n", host);
        return -1;
    }
    return 0;
}

/* The token of path: its text without the white space around it. */
static char *read_token(const char *path, tfq_error *e)
{
    char *text = ingest_read_all(path, e);
    if (text == NULL)
        return NULL;
    char *t = text_trim(text);
    if (strlen(t) < MIN_TOKEN_BYTES || strpbrk(t, " \t\r\n") != NULL) {
        tfq_error_set(e, TFQ_EINVAL, "%s: the token is %zu bytes%s; it must "
                      "be one word of at least %d (e.g. openssl rand -hex "
                      "32)", path, strlen(t),
                      strpbrk(t, " \t\r\n") ? " with white space" : "",
                      MIN_TOKEN_BYTES);
        free(text);
        return NULL;
    }
    memmove(text, t, strlen(t) + 1);
    return text;
}

/* The URL into url, and into the file path unless NULL (written beside it
 * and renamed, so that a reader never sees half of it). */
static int publish_url(const dashboard_config *c, const char *path,
                       char *url, size_t bytes)
{
    int v6 = strchr(c->host, ':') != NULL;
    snprintf(url, bytes, "%s://%s%s%s:%d/", c->tls_cert ? "https" : "http",
             v6 ? "[" : "", c->host, v6 ? "]" : "", c->port);
    if (path == NULL)
        return 0;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.part", path);
    FILE *f = fopen(tmp, "w");
    int ok = f != NULL && fprintf(f, "%s\n", url) > 0;
    if (f != NULL && fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "tfq dashboard: %s: cannot write: %s\n", path,
                strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The files' texts (token, certificate, key) into c; CLI_OK or
 * CLI_ERROR. */
static int read_files(const dash_opts *a, dashboard_config *c, char **texts)
{
    tfq_error e = {0};
    texts[0] = a->token_file ? read_token(a->token_file, &e) : NULL;
    if (a->token_file != NULL && texts[0] == NULL)
        goto fail;
    texts[1] = a->cert ? ingest_read_all(a->cert, &e) : NULL;
    texts[2] = a->key ? ingest_read_all(a->key, &e) : NULL;
    if ((a->cert && texts[1] == NULL) || (a->key && texts[2] == NULL))
        goto fail;
    c->token = texts[0];
    c->tls_cert = texts[1];
    c->tls_key = texts[2];
    return CLI_OK;
fail:
    fprintf(stderr, "tfq dashboard: %s\n", e.msg);
    return CLI_ERROR;
}

int cmd_dashboard(int argc, char **argv)
{
    dash_opts a = {.connect = cli_connect_default(),
                   .listen = DEFAULT_LISTEN};
    int p = parse(argc, argv, &a);
    char host[64];
    long port;
    if (p != 0)
        return p > 0 ? CLI_OK : CLI_USAGE;
    if (split_listen(a.listen, host, sizeof host, &port) != 0)
        return CLI_USAGE;
    if (!dashboard_is_loopback(host) &&
        (a.token_file == NULL || a.cert == NULL)) {
        fprintf(stderr, "tfq dashboard: --listen %s is not a loopback "
                "address: it needs --token-file FILE and --tls-cert FILE "
                "--tls-key FILE (else whoever reaches it reads the queue, "
                "and the token would travel in clear)\n", a.listen);
        return CLI_USAGE;
    }
    dashboard_config c = {.connect = a.connect, .host = host,
                          .port = (int)port};
    char *texts[3] = {NULL, NULL, NULL};
    int status = read_files(&a, &c, texts);
    tfq_error e = {0};
    dashboard *d = status == CLI_OK ? dashboard_new(&c, &e) : NULL;
    char url[256];
    if (status == CLI_OK && d == NULL) {
        fprintf(stderr, "tfq dashboard: %s\n", e.msg);
        status = CLI_ERROR;
    }
    if (d != NULL) {
        c.port = dashboard_port(d);
        status = publish_url(&c, a.url_file, url, sizeof url) == 0
                     ? CLI_OK
                     : CLI_ERROR;
    }
    if (d != NULL && status == CLI_OK) {
        fprintf(stderr, "tfq dashboard: serving %s (coordinator %s)\n", url,
                a.connect);
        volatile sig_atomic_t *stop = stop_on_signals();
        struct timespec ts = {0, STOP_POLL_NS};
        while (!*stop)
            nanosleep(&ts, NULL);
    }
    dashboard_destroy(&d);
    for (int i = 0; i < 3; i++)
        free(texts[i]);
    return status;
}
