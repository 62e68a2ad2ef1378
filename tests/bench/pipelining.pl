#!/usr/bin/perl
# What reading a request costs the listener: clients that pipeline whole
# conversations (8 x "tcpmux", then a 256-byte unknown name) as fast as they
# can, and the listener's CPU time for them, from /proc/PID/stat.
#
#   cargo build --release
#   perl tests/bench/pipelining.pl target/release/in-tcpmuxd [SECONDS] [CLIENTS]
#
# Run it against two builds to compare them; it prints one line and asserts
# nothing. Loopback only; each client stops after SECONDS (default 5).

use strict;
use warnings;
use IO::Socket::INET;
use File::Temp qw(tempdir);
use Time::HiRes qw(time);
use POSIX qw(sysconf _SC_CLK_TCK);

my ($binary, $seconds, $clients) = @ARGV;
die "usage: $0 BINARY [SECONDS] [CLIENTS]\n" unless defined $binary;
$seconds //= 5;
$clients //= 2;

my $dir = tempdir(CLEANUP => 1);
my $table = "$dir/tcpmux.conf";
open(my $fh, '>', $table) or die "$table: $!";
close($fh);
chmod(0644, $table);

my $pid = open(my $log, '-|') // die "fork: $!";
if ($pid == 0) {
    open(STDERR, '>&', \*STDOUT) or die;
    exec($binary, '--listen', '127.0.0.1:0', '-c', $table,
        '--max-connections', '1024', '--max-per-source', '1024')
        or die "exec $binary: $!";
}
my $port;
while (my $line = <$log>) {
    if ($line =~ /listening on 127\.0\.0\.1:(\d+)/) { $port = $1; last; }
}
die "the listener did not start\n" unless $port;
# The listener logs a line per connection; read them so it never blocks.
my $drain = fork() // die "fork: $!";
if ($drain == 0) { while (<$log>) {} exit 0; }

my $request = ("tcpmux\r\n" x 8) . ('x' x 256) . "\r\n";
my $reply = ("+OK\r\n" x 8) . "-Service not available; send HELP for a list\r\n";

sub cpu_ticks {
    open(my $stat, '<', "/proc/$pid/stat") or die "/proc/$pid/stat: $!";
    my $text = <$stat>;
    $text =~ s/^.*\) //;
    my @f = split(' ', $text);
    return $f[11] + $f[12];    # utime and stime, fields 14 and 15
}

pipe(my $counts, my $counted) or die "pipe: $!";
my $ticks_before = cpu_ticks();
my $start = time();
my @kids;
for (1 .. $clients) {
    my $kid = fork() // die "fork: $!";
    if ($kid == 0) {
        my ($count, $wrong) = (0, 0);
        my $until = time() + $seconds;
        while (time() < $until) {
            my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port)
                or die "connect: $!";
            print $s $request;
            local $/;
            my $got = <$s> // '';
            $wrong++ if $got ne $reply;
            $count++;
        }
        syswrite($counted, "$count $wrong\n");
        exit 0;
    }
    push @kids, $kid;
}
close($counted);
my ($connections, $wrong) = (0, 0);
while (my $line = <$counts>) {
    my ($c, $w) = split(' ', $line);
    $connections += $c;
    $wrong += $w;
}
waitpid($_, 0) for @kids;
my $elapsed = time() - $start;
my $cpu = (cpu_ticks() - $ticks_before) / sysconf(_SC_CLK_TCK);
kill('TERM', $pid);
waitpid($pid, 0);
waitpid($drain, 0);
my $mb = $connections * length($request) / 1e6;
printf("%d clients, %d connections (%d wrong replies), %.2f MB of requests in %.1f s "
    . "(%.2f MB/s): listener CPU %.2f s (%.0f%%), %.2f CPU s per MB\n",
    $clients, $connections, $wrong, $mb, $elapsed, $mb / $elapsed,
    $cpu, 100 * $cpu / $elapsed, $cpu / $mb);
