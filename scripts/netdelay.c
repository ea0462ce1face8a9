// netdelay: holds every packet of one netfilter queue for a fixed time, then lets it go: the
// latency of a network link, for kernels without netem (scripts/netns-cluster `--delay-ms`).
//
//   netdelay QUEUE DELAY_US
//
// Run inside a network namespace whose INPUT chain sends the packets to delay to the queue
// (`iptables-legacy -A INPUT -i eth+ -j NFQUEUE --queue-num QUEUE`; on the way in, because a
// packet held on the way out counts against its sender's socket and TCP then throttles itself). Packets keep their order:
// each is released DELAY_US after it was queued, with one batch verdict for every packet due
// (queue ids grow, and the delay is the same for all, so the due packets are a prefix).
// Speaks nfnetlink_queue over a raw netlink socket: no library needed. Exits on SIGTERM/SIGINT,
// releasing nothing it holds (the kernel drops a dead queue's packets; the caller removes the
// rule first).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/prctl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RING (1 << 20) // packets held at once, at most (a power of two)

static struct { uint32_t id; uint64_t due; } held[RING];
static uint64_t head, tail; // held[tail..head) are waiting, oldest first
static volatile sig_atomic_t stop;

static uint64_t now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static void on_signal(int sig) { (void)sig; stop = 1; }

static void die(const char *what) {
    fprintf(stderr, "netdelay: %s: %s\n", what, strerror(errno));
    exit(1);
}

// Appends one attribute to the message in `buf` (whose nlmsg_len is kept up to date).
static void put_attr(char *buf, uint16_t type, const void *data, uint16_t len) {
    struct nlmsghdr *n = (struct nlmsghdr *)buf;
    struct nlattr *a = (struct nlattr *)(buf + NLMSG_ALIGN(n->nlmsg_len));
    a->nla_type = type;
    a->nla_len = (uint16_t)(NLA_HDRLEN + len);
    memcpy((char *)a + NLA_HDRLEN, data, len);
    n->nlmsg_len = NLMSG_ALIGN(n->nlmsg_len) + NLA_ALIGN(a->nla_len);
}

static void start_message(char *buf, uint16_t type, uint16_t flags, uint16_t queue) {
    memset(buf, 0, 256);
    struct nlmsghdr *n = (struct nlmsghdr *)buf;
    n->nlmsg_len = NLMSG_LENGTH(sizeof(struct nfgenmsg));
    n->nlmsg_type = (uint16_t)((NFNL_SUBSYS_QUEUE << 8) | type);
    n->nlmsg_flags = flags;
    struct nfgenmsg *g = NLMSG_DATA(n);
    g->nfgen_family = AF_UNSPEC;
    g->version = NFNETLINK_V0;
    g->res_id = htons(queue);
}

static void send_message(int fd, char *buf) {
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    struct nlmsghdr *n = (struct nlmsghdr *)buf;
    if (sendto(fd, buf, n->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) die("sending to the kernel");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: netdelay QUEUE DELAY_US\n");
        return 2;
    }
    uint16_t queue = (uint16_t)atoi(argv[1]);
    uint64_t delay = (uint64_t)strtoull(argv[2], NULL, 10);
    prctl(PR_SET_TIMERSLACK, 1000UL); // wake within a microsecond of a packet's due time, not 50
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER);
    if (fd < 0) die("netlink socket");
    struct sockaddr_nl local = {.nl_family = AF_NETLINK};
    if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) die("binding the netlink socket");
    int size = 64 << 20, one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);

    char buf[256];
    start_message(buf, NFQNL_MSG_CONFIG, NLM_F_REQUEST, queue);
    struct nfqnl_msg_config_cmd bind_cmd = {.command = NFQNL_CFG_CMD_BIND, .pf = htons(AF_INET)};
    put_attr(buf, NFQA_CFG_CMD, &bind_cmd, sizeof bind_cmd);
    send_message(fd, buf);

    start_message(buf, NFQNL_MSG_CONFIG, NLM_F_REQUEST, queue);
    struct nfqnl_msg_config_params params = {.copy_range = htonl(0), .copy_mode = NFQNL_COPY_META};
    put_attr(buf, NFQA_CFG_PARAMS, &params, sizeof params);
    uint32_t maxlen = htonl(RING / 2);
    put_attr(buf, NFQA_CFG_QUEUE_MAXLEN, &maxlen, sizeof maxlen);
    send_message(fd, buf);

    static char in[1 << 18];
    while (!stop) {
        struct timespec wait, *timeout = NULL; // ppoll: microseconds, where poll has milliseconds
        if (tail < head) {
            uint64_t t = now_us(), due = held[tail & (RING - 1)].due, us = due > t ? due - t : 0;
            wait.tv_sec = (time_t)(us / 1000000u);
            wait.tv_nsec = (long)(us % 1000000u) * 1000;
            timeout = &wait;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (ppoll(&p, 1, timeout, NULL) < 0 && errno != EINTR) die("poll");
        for (;;) {
            ssize_t got = recv(fd, in, sizeof in, MSG_DONTWAIT);
            if (got < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
                if (errno == ENOBUFS) continue;
                die("receiving from the kernel");
            }
            uint64_t t = now_us();
            for (struct nlmsghdr *n = (struct nlmsghdr *)in; NLMSG_OK(n, (size_t)got); n = NLMSG_NEXT(n, got)) {
                if (n->nlmsg_type == NLMSG_ERROR) {
                    struct nlmsgerr *e = NLMSG_DATA(n);
                    if (e->error != 0) {
                        errno = -e->error;
                        die("the kernel refused the queue's configuration (is another netdelay bound to it?)");
                    }
                    continue;
                }
                if ((n->nlmsg_type & 0xff) != NFQNL_MSG_PACKET) continue;
                char *attrs = (char *)NLMSG_DATA(n) + NLMSG_ALIGN(sizeof(struct nfgenmsg));
                int left = (int)(n->nlmsg_len - NLMSG_LENGTH(sizeof(struct nfgenmsg)));
                for (struct nlattr *a = (struct nlattr *)attrs; left >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= left;
                     left -= NLA_ALIGN(a->nla_len), a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len))) {
                    if ((a->nla_type & NLA_TYPE_MASK) != NFQA_PACKET_HDR) continue;
                    struct nfqnl_msg_packet_hdr *h = (struct nfqnl_msg_packet_hdr *)((char *)a + NLA_HDRLEN);
                    if (head - tail == RING) { fprintf(stderr, "netdelay: more than %d packets held\n", RING); exit(1); }
                    held[head & (RING - 1)].id = ntohl(h->packet_id);
                    held[head & (RING - 1)].due = t + delay;
                    head++;
                    break;
                }
            }
        }
        uint64_t t = now_us();
        uint32_t last = 0;
        int due = 0;
        while (tail < head && held[tail & (RING - 1)].due <= t) {
            last = held[tail & (RING - 1)].id;
            tail++;
            due = 1;
        }
        if (due) {
            start_message(buf, NFQNL_MSG_VERDICT_BATCH, NLM_F_REQUEST, queue);
            struct nfqnl_msg_verdict_hdr v = {.verdict = htonl(NF_ACCEPT), .id = htonl(last)};
            put_attr(buf, NFQA_VERDICT_HDR, &v, sizeof v);
            send_message(fd, buf);
        }
    }
    return 0;
}
