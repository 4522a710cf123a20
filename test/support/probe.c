/*
 * The attacker's toolbox, as one static binary: each command makes the system calls a hostile
 * function would try and prints one JSON object of what the kernel answered ("ok" or the errno
 * name). Node cannot make these calls itself (mount, raw sockets, ptrace, unshare, fork).
 * Built by probe.ts with `gcc -static`; it runs in the runtime image, which has no shell or libc
 * tools of its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_ether.h>

static const char *outcome(int rc) { return rc == -1 ? strerrorname_np(errno) : "ok"; }

static void print_ids(void) {
  printf("{\"uid\":%d,\"euid\":%d,\"gid\":%d,\"egid\":%d}\n", getuid(), geteuid(), getgid(), getegid());
}

static const char *try_socket(int domain, int type, int proto) {
  int fd = socket(domain, type, proto);
  if (fd >= 0) close(fd);
  return outcome(fd < 0 ? -1 : 0);
}

static const char *try_ptrace(pid_t pid) {
  if (ptrace(PTRACE_ATTACH, pid, 0, 0) == -1) return strerrorname_np(errno);
  waitpid(pid, 0, __WALL);
  ptrace(PTRACE_DETACH, pid, 0, 0);
  return "ok";
}

static volatile int spin_stop = 0;
static void *spin(void *arg) {
  (void)arg;
  volatile unsigned long n = 0;
  while (!spin_stop) n++;
  return 0;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  const char *cmd = argc > 1 ? argv[1] : "";
  if (!strcmp(cmd, "ids")) {
    print_ids();
  } else if (!strcmp(cmd, "setuid")) {
    /* Run from a setuid-root copy: does the bit elevate, and can the process become root? */
    int uid = getuid(), euid = geteuid();
    const char *setuid0 = outcome(setuid(0));
    const char *setgid0 = outcome(setgid(0));
    printf("{\"uid\":%d,\"euid\":%d,\"setuid0\":\"%s\",\"setgid0\":\"%s\",\"euidAfter\":%d}\n", uid, euid, setuid0, setgid0, geteuid());
  } else if (!strcmp(cmd, "mount")) {
    const char *tmpfs = outcome(mount("none", "/tmp", "tmpfs", 0, ""));
    const char *bind = outcome(mount("/", "/tmp", 0, MS_BIND, 0));
    const char *remount = outcome(mount(0, "/", 0, MS_REMOUNT | MS_BIND, 0));
    const char *umount = outcome(umount2("/data", MNT_DETACH));
    printf("{\"tmpfs\":\"%s\",\"bind\":\"%s\",\"remountRoot\":\"%s\",\"umountData\":\"%s\"}\n", tmpfs, bind, remount, umount);
  } else if (!strcmp(cmd, "unshare")) {
    const char *user = outcome(unshare(CLONE_NEWUSER));
    const char *ns = outcome(unshare(CLONE_NEWNS));
    const char *net = outcome(unshare(CLONE_NEWNET));
    const char *root = outcome(chroot("/tmp"));
    printf("{\"user\":\"%s\",\"mount\":\"%s\",\"net\":\"%s\",\"chroot\":\"%s\"}\n", user, ns, net, root);
  } else if (!strcmp(cmd, "raw")) {
    const char *icmp = try_socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    const char *tcp = try_socket(AF_INET, SOCK_RAW, IPPROTO_TCP);
    const char *raw6 = try_socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
    const char *packet = try_socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    const char *ping = try_socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    printf("{\"rawIcmp\":\"%s\",\"rawTcp\":\"%s\",\"rawIcmp6\":\"%s\",\"packet\":\"%s\",\"pingDgram\":\"%s\"}\n", icmp, tcp, raw6, packet, ping);
  } else if (!strcmp(cmd, "ptrace") && argc > 2) {
    /* argv[2..]: pids to attach to. */
    printf("{");
    for (int i = 2; i < argc; i++) printf("%s\"%s\":\"%s\"", i > 2 ? "," : "", argv[i], try_ptrace(atoi(argv[i])));
    printf("}\n");
  } else if (!strcmp(cmd, "forkbomb")) {
    /* The classic: every process forks forever. Only the pids limit (and the runtime's reaper) ends it. */
    printf("{\"started\":true}\n");
    fflush(stdout);
    for (;;) fork();
  } else if (!strcmp(cmd, "fill")) {
    /* A quiet fork bomb: every process forks until the kernel refuses, then sleeps. When the first
       process is refused, every pid is taken, and none is given back (nothing here exits): it says
       so, then holds them, costing no CPU. Only a kill ends it. */
    pid_t first = getpid();
    while (fork() != -1) {
    }
    if (getpid() == first) {
      printf("{\"full\":\"%s\"}\n", strerrorname_np(errno));
      fflush(stdout);
    }
    for (;;) pause();
  } else if (!strcmp(cmd, "spin") && argc > 3) {
    /* argv[2] threads spin for argv[3] ms of wall time; reports the CPU time they got. */
    int n = atoi(argv[2]);
    double wall = atoi(argv[3]) / 1000.0;
    pthread_t t[64];
    if (n > 64) n = 64;
    double start = now();
    for (int i = 0; i < n; i++) pthread_create(&t[i], 0, spin, 0);
    while (now() - start < wall) usleep(10000);
    spin_stop = 1;
    for (int i = 0; i < n; i++) pthread_join(t[i], 0);
    double elapsed = now() - start;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    printf("{\"threads\":%d,\"wall\":%.3f,\"cpu\":%.3f}\n", n, elapsed, cpu);
  } else if (!strcmp(cmd, "hog")) {
    /* Native memory, outside any JS heap: touched page by page until the kernel says no. */
    size_t total = 0;
    for (;;) {
      char *p = malloc(16 << 20);
      if (!p) break;
      memset(p, 1, 16 << 20);
      total += 16 << 20;
    }
    printf("{\"allocatedMb\":%zu}\n", total >> 20);
  } else {
    fprintf(stderr, "usage: probe ids|setuid|mount|unshare|raw|ptrace <pid>...|forkbomb|fill|spin <threads> <ms>|hog\n");
    return 2;
  }
  return 0;
}
