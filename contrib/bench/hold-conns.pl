#!/usr/bin/perl
# hold-conns.pl - open N TLS connections to 127.0.0.1:PORT, each with one
# keep-alive request answered, then hold them all idle until killed: what
# an idle connection costs the server is its memory now. Writes the number
# held to READY.n, then creates READY. A client certificate is sent with
# --cert FILE --key FILE. (Used by run.sh; not a test.)
#
#   perl hold-conns.pl PORT N READY [--cert FILE --key FILE]
use strict;
use warnings;
use IO::Socket::SSL;

my ($port, $n, $ready, @opt) = @ARGV;
die "usage: $0 PORT N READY [--cert FILE --key FILE]\n" unless $port && $n && $ready;
my %o = @opt;
my @held;
# one client context for all connections: a context per connection (the
# default) reads the system's CA bundle each time and made the client, not
# the server, the bound (some 30 connections a second)
my $ctx = IO::Socket::SSL::SSL_Context->new(SSL_verify_mode => SSL_VERIFY_NONE, SSL_session_cache_size => 0,
                                            ($o{'--cert'} ? (SSL_cert_file => $o{'--cert'}, SSL_key_file => $o{'--key'}) : ()))
    or die "hold-conns: client context: $SSL_ERROR\n";
for my $i (1 .. $n) {
    # source addresses 127.0.0.2-9 in turn: after a benchmark's rounds the
    # ephemeral ports of one address can be used up by TIME_WAIT
    my $s = IO::Socket::SSL->new(PeerAddr => '127.0.0.1', PeerPort => $port, LocalAddr => '127.0.0.' . (2 + $i % 8),
                                 SSL_reuse_ctx => $ctx, SSL_hostname => 'app.example.com')
        or do { warn "hold-conns: connection $i: $SSL_ERROR\n"; last };
    print $s "GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n";
    my $head = '';
    while ($head !~ /\r\n\r\n/) {
        my $k = sysread($s, my $b, 4096);
        last unless $k;
        $head .= $b;
    }
    $head =~ m{^HTTP/1\.[01] 200} or do { warn "hold-conns: connection $i: no 200\n"; last };
    push @held, $s;
}
open(my $f, '>', "$ready.n") or die;
print $f scalar(@held), "\n";
close($f);
open($f, '>', $ready) or die;
close($f);
sleep 3600;
