/*
 * Throwaway Kafka for tests: a one-broker librdkafka mock cluster.
 *
 * Usage: launcher TOPIC[:PARTITIONS]...   (default 3 partitions, replication 1)
 * Prints the bootstrap servers as one line on stdout, then serves until stdin
 * closes (parent died or hung up) or SIGTERM/SIGINT arrives, and exits 0.
 * Lines on stdin: "down" takes the broker down (connections dropped and refused),
 * "up" brings it back, to test outages; "error API_KEY COUNT ERROR_CODE [DELAY_MS]"
 * answers the next COUNT requests of that API (e.g. 11 JoinGroup) with that Kafka error
 * code (e.g. 30 GROUP_AUTHORIZATION_FAILED), each after DELAY_MS, as a broker refusing a
 * client would.
 */
#define _GNU_SOURCE
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

static int create_topic(rd_kafka_mock_cluster_t *mc, const char *arg) {
        char name[256];
        const char *colon = strchr(arg, ':');
        size_t len        = colon ? (size_t)(colon - arg) : strlen(arg);
        int partitions    = colon ? atoi(colon + 1) : 3;
        if (len == 0 || len >= sizeof(name) || partitions < 1) {
                fprintf(stderr, "launcher: bad topic spec '%s'\n", arg);
                return -1;
        }
        memcpy(name, arg, len);
        name[len] = '\0';
        rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, name, partitions, 1);
        if (err) {
                fprintf(stderr, "launcher: topic %s: %s\n", name, rd_kafka_err2str(err));
                return -1;
        }
        return 0;
}

/* Applies a "down"/"up"/"error" command line to broker 1. */
static void run_command(rd_kafka_mock_cluster_t *mc, const char *line) {
        int api_key, count, code, rtt_ms = 0;
        if (strncmp(line, "down", 4) == 0)
                rd_kafka_mock_broker_set_down(mc, 1);
        else if (strncmp(line, "up", 2) == 0)
                rd_kafka_mock_broker_set_up(mc, 1);
        else if (sscanf(line, "error %d %d %d %d", &api_key, &count, &code, &rtt_ms) >= 3 && count > 0 && count <= 1000) {
                for (int i = 0; i < count; i++)
                        rd_kafka_mock_broker_push_request_error_rtts(mc, 1, (int16_t)api_key, 1, (rd_kafka_resp_err_t)code, rtt_ms);
        } else
                fprintf(stderr, "launcher: unknown command '%s'\n", line);
}

/* Runs stdin commands until stdin reaches EOF/hangs up or a blocked signal in `set` is pending. */
static void serve(rd_kafka_mock_cluster_t *mc, const sigset_t *set) {
        char buf[512];
        size_t used = 0;
        struct pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {signalfd(-1, set, 0), POLLIN, 0}};
        for (;;) {
                if (poll(fds, 2, -1) < 0 || fds[1].revents)
                        return;
                if (!fds[0].revents)
                        continue;
                ssize_t n = read(STDIN_FILENO, buf + used, sizeof(buf) - 1 - used);
                if (n <= 0)
                        return;
                used += (size_t)n;
                buf[used] = '\0';
                char *nl;
                while ((nl = strchr(buf, '\n')) != NULL) {
                        *nl = '\0';
                        run_command(mc, buf);
                        used -= (size_t)(nl + 1 - buf);
                        memmove(buf, nl + 1, used + 1);
                }
                if (used == sizeof(buf) - 1)
                        used = 0; /* an overlong line: drop it */
        }
}

int main(int argc, char **argv) {
        char errstr[512];
        sigset_t set;
        /* Block before librdkafka starts threads so they inherit the mask. */
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigprocmask(SIG_BLOCK, &set, NULL);

        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
        /* KAFKA_MOCK_DEBUG=mock logs the mock's group coordinator (joins, syncs, timers) on stderr. */
        const char *debug = getenv("KAFKA_MOCK_DEBUG");
        if (debug && *debug) {
                rd_kafka_conf_set(conf, "debug", debug, errstr, sizeof(errstr));
                rd_kafka_conf_set(conf, "log_level", "7", errstr, sizeof(errstr));
        }
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "launcher: rd_kafka_new: %s\n", errstr);
                return 1;
        }
        rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
        if (!mc) {
                fprintf(stderr, "launcher: rd_kafka_mock_cluster_new failed\n");
                return 1;
        }
        for (int i = 1; i < argc; i++)
                if (create_topic(mc, argv[i]) != 0)
                        return 1;

        printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
        fflush(stdout);
        serve(mc, &set);

        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
        return 0;
}
