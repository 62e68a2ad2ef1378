#!/usr/bin/perl
# A test service: reports what it was started with, then echoes one line.
use strict;
use warnings;
use Socket qw(getnameinfo NI_NUMERICHOST NI_NUMERICSERV);
$| = 1;
my $peer = getpeername(STDIN);
my ($err, $host, $port) = $peer ? getnameinfo($peer, NI_NUMERICHOST | NI_NUMERICSERV) : ("", "none", "");
opendir(my $dir, "/proc/self/fd") or die "opendir: $!";
my $self = fileno($dir);
my @fds = sort { $a <=> $b } grep { /^\d+$/ && $_ != $self } readdir($dir);
print "uid=$< euid=$>\r\n";
print "gid=$( egid=$)\r\n";
print "peer=$host $port\r\n";
print "fds=@fds\r\n";
print "args=@ARGV\r\n";
print "env $_=$ENV{$_}\r\n" for sort keys %ENV;
my $line = <STDIN>;
print "read=", defined $line ? $line : "EOF\r\n";
