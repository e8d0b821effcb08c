#!/usr/bin/perl
# connect-rate.pl - connection setup rate through a proxy, each connection
# new and carrying one small GET (Connection: close) read to the end.
#   CONNECT mode: a CONNECT HOST:PORT, its 200, then the GET in the tunnel.
#   TLS mode (--tls CAFILE): a TLS handshake with SNI HOST (verified against
#   CAFILE; no session reuse), then the GET - for an SNI passthrough.
# PARALLEL processes share TOTAL connections; prints connections/s. A
# refused or broken one is an error (exit 1), so a proxy that fails fast
# cannot look fast.
#
#   perl connect-rate.pl [--tls CAFILE] PORT HOST:PORT [TOTAL] [PARALLEL]
use strict;
use warnings;
use IO::Socket::INET;
use Time::HiRes qw(time);

my $cafile;
if (@ARGV && $ARGV[0] eq '--tls') {
    shift @ARGV;
    $cafile = shift @ARGV;
    require IO::Socket::SSL;
}
my ($pport, $target, $total, $par) = @ARGV;
die "usage: $0 PROXY_PORT HOST:PORT [TOTAL] [PARALLEL]\n" unless $pport && $target;
$total ||= 2000;
$par ||= 8;
my $each = int($total / $par);
my ($host) = split /:/, $target;

sub one_tls {
    my $s = IO::Socket::SSL->new(PeerAddr => '127.0.0.1', PeerPort => $pport, SSL_hostname => $host,
                                 SSL_verifycn_name => $host, SSL_ca_file => $cafile,
                                 SSL_session_cache_size => 0) or return 0;
    print $s "GET / HTTP/1.1\r\nHost: $target\r\nConnection: close\r\n\r\n";
    my $resp = '';
    while (1) {
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $resp .= $buf;
    }
    return $resp =~ m{^HTTP/1\.1 200} ? 1 : 0;
}

sub one {
    return one_tls() if $cafile;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $pport, Proto => 'tcp')
        or return 0;
    print $s "CONNECT $target HTTP/1.1\r\nHost: $target\r\n\r\n";
    my $head = '';
    while ($head !~ /\r\n\r\n/) {
        my $n = sysread($s, my $buf, 4096);
        return 0 unless $n;
        $head .= $buf;
    }
    return 0 unless $head =~ m{^HTTP/1\.[01] 200};
    print $s "GET / HTTP/1.1\r\nHost: $target\r\nConnection: close\r\n\r\n";
    my $resp = '';
    while (1) {
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $resp .= $buf;
    }
    return $resp =~ m{^HTTP/1\.1 200} ? 1 : 0;
}

my $t0 = time;
my @kids;
for (1 .. $par) {
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        for (1 .. $each) { one() or exit 1 }
        exit 0;
    }
    push @kids, $pid;
}
my $bad = 0;
for (@kids) { waitpid($_, 0); $bad++ if $? }
my $dt = time - $t0;
die "connect-rate: $bad of $par clients saw a failed tunnel\n" if $bad;
printf "%.0f\n", $each * $par / $dt;
