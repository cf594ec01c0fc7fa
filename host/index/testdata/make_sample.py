#!/usr/bin/env python3
"""Writes sample.xml: a small, realistic MediaWiki 0.11 export for `percore demo`.

Deterministic (no randomness beyond a fixed-seed generator), so re-running
it gives the same bytes. The XML is committed; this script documents how it
was made. Run: python3 make_sample.py > sample.xml
"""
import hashlib
import random
import sys

rng = random.Random(2024)

def esc_text(s):
    # Revision text: apostrophes stay raw, as in real dumps.
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")

def esc(s):
    # MediaWiki writes titles, attributes and text with htmlspecialchars(ENT_QUOTES).
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
             .replace('"', "&quot;").replace("'", "&#039;"))

ARTICLES = {
"Python (programming language)": """'''Python''' is a high-level, general-purpose [[programming language]]. Its design philosophy emphasizes code readability with the use of significant indentation.<ref>{{cite web |title=General Python FAQ |url=https://docs.python.org/3/faq/general.html}}</ref>

Python is dynamically typed and garbage-collected. It supports multiple programming paradigms, including structured, object-oriented and functional programming. It is often described as a "batteries included" language due to its comprehensive standard library.

== History ==
Python was conceived in the late 1980s by Guido van Rossum at Centrum Wiskunde & Informatica (CWI) in the Netherlands as a successor to the ABC programming language. Python 3.0, released in 2008, was a major revision not completely backward-compatible with earlier versions.

== Concurrency ==
The reference implementation, CPython, has a global interpreter lock (GIL) that allows only one thread to execute Python bytecode at a time. Projects such as [[PyParallel]] explored ways around it; Python 3.13 added an optional free-threaded build.

== See also ==
* [[Rust (programming language)]]
* [[WebAssembly]]
""",
"Rust (programming language)": """'''Rust''' is a general-purpose [[programming language]] emphasizing performance, type safety and concurrency. It enforces memory safety, meaning that all references point to valid memory, without a garbage collector.

To simultaneously enforce memory safety and prevent data races, its "borrow checker" tracks the object lifetime of all references in a program during compilation. Rust was influenced by ideas from functional programming, including immutability, higher-order functions and algebraic data types.

== History ==
Software developer Graydon Hoare created Rust as a personal project while working at Mozilla Research in 2006. Mozilla officially sponsored the project in 2009. The first stable release, Rust 1.0, was published in May 2015.

== Ecosystem ==
Rust's package manager, Cargo, downloads "crates" from crates.io. Crates such as <code>fst</code> (finite-state transducers) and <code>memmap2</code> (memory-mapped files) are used to build compact, shareable indexes. Rust compiles to [[WebAssembly]] as well as to native code.

== See also ==
* [[Python (programming language)]]
* [[Memory-mapped file]]
""",
"WebAssembly": """'''WebAssembly''' ('''Wasm''') defines a portable binary-code format and a corresponding text format for executable programs, as well as software interfaces for facilitating communication between such programs and their host environment.

The main goal of WebAssembly is to facilitate high-performance applications on web pages, but it is also designed to be usable in non-web environments. It is an open standard intended to support any language on any operating system.

== Component model ==
The WebAssembly System Interface (WASI) and the component model describe how modules import and export typed functions described in WIT (WebAssembly Interface Types). A host such as Wasmtime instantiates a component per request and links the host functions it offers, for example a lookup in a [[Wikipedia]] title index.

== Security ==
Each module runs in a sandbox with its own linear memory; it can only reach the outside world through the functions its host grants it. Hosts commonly limit memory and use "fuel" or epoch interruption to bound run time.
""",
"Wikipedia": """'''Wikipedia''' is a free content online encyclopedia written and maintained by a community of volunteers, known as Wikipedians, through open collaboration and the wiki software [[MediaWiki]]. Founded by Jimmy Wales and Larry Sanger in 2001, it is the largest and most-read reference work in history.

== Database dumps ==
The Wikimedia Foundation publishes dumps of every wiki. The English Wikipedia's <code>pages-articles.xml</code> is an [[XML]] file of over 20 million &lt;page&gt; elements, each with a &lt;title&gt;, a namespace, an id, and the wikitext of the latest revision. Uncompressed it is about 100 GB.

A program that serves articles straight from the dump needs an index from title to byte offset: the text of an article is then one range read away.

== Titles ==
Titles are case-sensitive except for the first letter, and underscores in URLs stand for spaces: <code>Rust_(programming_language)</code> names [[Rust (programming language)]].
""",
"MediaWiki": """'''MediaWiki''' is free and open-source wiki software originally developed by Magnus Manske for use on [[Wikipedia]] in 2002. It is written in the [[PHP]] programming language and stores all text content in a database.

== Export format ==
Special:Export and the dump scripts write pages as XML following the export schema (version 0.11 at the time of writing). A &lt;siteinfo&gt; header lists the wiki's namespaces; every &lt;page&gt; has a &lt;title&gt;, &lt;ns&gt;, &lt;id&gt;, optionally &lt;redirect title="..."/&gt;, and one or more &lt;revision&gt; elements.

Redirect pages make up about half of all pages in the main namespace of large wikis.
""",
"XML": """'''Extensible Markup Language''' ('''XML''') is a markup language and file format for storing, transmitting, and reconstructing arbitrary data. It defines a set of rules for encoding documents in a format that is both human-readable and machine-readable.

In character data the characters <code>&lt;</code> and <code>&amp;</code> must be escaped as entity references such as <code>&amp;lt;</code> and <code>&amp;amp;</code>, or as numeric character references like <code>&amp;#039;</code>. A consequence useful for fast scanners: every raw <code>&lt;</code> in a well-formed document starts markup.
""",
"UTF-8": """'''UTF-8''' is a character encoding standard used for electronic communication. Defined by the Unicode Standard, the name is derived from ''Unicode Transformation Format – 8-bit''. It encodes each code point in one to four bytes.

UTF-8 is backward compatible with ASCII, and byte order of UTF-8 strings is the same as code point order, which makes sorted lists of titles in different scripts — Latin, Cyrillic ([[Москва]]), CJK ([[東京]]) — straightforward to compare.
""",
"Memory-mapped file": """A '''memory-mapped file''' is a segment of virtual memory that has been assigned a direct byte-for-byte correlation with some portion of a file. The operating system loads pages of the file on demand through the [[page cache]], and several processes mapping the same file share the same physical pages.

This makes an index that is built once and mapped by many workers cheap to open: nothing is parsed or copied at start-up, and memory is shared rather than duplicated per worker.
""",
"Finite-state transducer": """A '''finite-state transducer''' ('''FST''') is a finite-state machine with two memory tapes. An ordered set of keys can be stored as an FST that shares both prefixes and suffixes, often in a fraction of the space of the keys themselves.

Lookups walk one transition per input byte, and range and prefix queries stream keys in lexicographic (byte) order. Automata such as Levenshtein or case-insensitive matchers can be intersected with the FST to search it.
""",
"AT&T": """'''AT&T Inc.''' is an American multinational telecommunications holding company headquartered in Dallas, Texas. Its Bell Labs research arm created [[Unix]] and the [[C (programming language)|C programming language]].

The company's name is written with an ampersand, which a MediaWiki dump stores as <code>AT&amp;amp;T</code> in the &lt;title&gt; element.
""",
"Unix": """'''Unix''' is a family of multitasking, multi-user computer operating systems that derive from the original AT&T Unix, whose development started in 1969 at the Bell Labs research center by Ken Thompson, Dennis Ritchie, and others.

The Unix philosophy favours small programs that do one thing well, such as <code>grep</code>, which searches text for lines matching a pattern.
""",
"C (programming language)": """'''C''' is a general-purpose programming language created in the 1970s by Dennis Ritchie. It was designed to be compiled to provide low-level access to memory and language constructs that map efficiently to machine instructions.

C remains widely used for operating systems, device drivers and protocol stacks, and it is a common target for interoperability from languages like [[Rust (programming language)|Rust]] and [[Python (programming language)|Python]].
""",
"Москва": """'''Москва́''' — столица и крупнейший по численности населения город России. Город федерального значения, административный центр Центрального федерального округа.

Moscow is the capital and largest city of Russia. Its article title in the Russian Wikipedia is written in Cyrillic, and sorts after every Latin title in byte order.
""",
"東京": """'''東京都'''（とうきょうと）は、日本の首都であり、関東地方に位置する都。

Tokyo is the capital of Japan. This page exists to exercise CJK titles: each character of its title takes three bytes in [[UTF-8]].
""",
"PyParallel": """'''PyParallel''' was an experimental fork of [[Python (programming language)|CPython]] by Trent Nelson that let Python code run in parallel on Windows, using thread pools and I/O completion ports.

Its Wikipedia demo served article titles from a trie loaded from the full list of English Wikipedia titles; loading took minutes and many gigabytes of memory, which motivates indexes that are built once and memory-mapped.
""",
"Hash table": """A '''hash table''' is a data structure that implements an associative array, mapping keys to values. It uses a hash function to compute an index into an array of buckets.

Unlike a [[Finite-state transducer|finite-state transducer]] or a [[trie]], a hash table does not keep keys in order, so prefix listing needs another structure.
""",
"Trie": """A '''trie''', also called a prefix tree, is a tree data structure used for locating specific keys from within a set. Keys that share a prefix share the path from the root.

A double-array trie (datrie) is compact for lookups but is usually built in memory at start-up, which is slow for tens of millions of keys.
""",
"Page cache": """In computing, a '''page cache''' is a transparent cache for the pages originating from a secondary storage device such as a hard disk drive or solid-state drive. The operating system keeps a page cache in otherwise unused portions of the main memory.

Reads of a [[memory-mapped file]] that is already in the page cache cost no I/O at all; benchmarks of file scanners usually state whether they ran with a warm or a cold cache.
""",
"HTTP range request": """An '''HTTP range request''' asks a server to send only a portion of a resource, named by a byte range such as <code>Range: bytes=1000-1999</code>. Both ends are inclusive.

A title index that records the first and last byte of each &lt;page&gt; element lets a server answer with exactly that element.
""",
"Star Wars: Episode IV – A New Hope": """'''''Star Wars''''' (retroactively retitled '''''Star Wars: Episode IV – A New Hope''''') is a 1977 American epic space opera film written and directed by George Lucas.

Its title contains a colon although it is in the main namespace: only known namespace names such as <code>Talk:</code> form a prefix.
""",
"\"Weird Al\" Yankovic": """'''Alfred Matthew "Weird Al" Yankovic''' is an American musician and comedian known for his parodies of popular songs.

His title contains double quotes, which the dump writes as <code>&amp;quot;</code>.
""",
"O'Reilly Media": """'''O'Reilly Media''' is an American learning company that publishes books on computer technology, including titles on [[Python (programming language)|Python]], [[Rust (programming language)|Rust]] and [[Unix]].

The apostrophe in its title is stored in the dump as <code>&amp;#039;</code>.
""",
}

TALK = {
    "Talk:Python (programming language)": "== GIL ==\nShould the article say more about the free-threaded build? ~~~~\n\n:Yes, in the Concurrency section. ~~~~",
    "Talk:Wikipedia": "== Dump size ==\nThe pages-articles figure needs updating every year. ~~~~",
    "Talk:Москва": "== Название ==\nОбсуждение названия статьи. ~~~~",
    "Talk:WebAssembly": "== WASI ==\nAdd a section on the component model? ~~~~",
}

REDIRECTS = {
    "Python language": "Python (programming language)",
    "Python programming language": "Python (programming language)",
    "CPython": "Python (programming language)",
    "Rust language": "Rust (programming language)",
    "Rustlang": "Rust (programming language)",
    "Wasm": "WebAssembly",
    "WASM": "WebAssembly",
    "Web Assembly": "WebAssembly",
    "Extensible Markup Language": "XML",
    "Moscow": "Москва",
    "Moskva": "Москва",
    "Tokyo": "東京",
    "東京都": "東京",
    "American Telephone & Telegraph": "AT&T",
    "AT&T Inc.": "AT&T",
    "Mmap": "Memory-mapped file",
    "FST": "Finite-state transducer",
    "Prefix tree": "Trie",
    "Weird Al": "\"Weird Al\" Yankovic",
    "O'Reilly": "O'Reilly Media",
    "Star Wars (film)": "Star Wars: Episode IV – A New Hope",
    "A New Hope": "Star Wars: Episode IV – A New Hope",
    "Range request": "HTTP range request",
    "UTF8": "UTF-8",
}

# Filler topics: plausible computing terms, each a short article or a redirect.
NOUNS = ["algorithm", "cache", "compiler", "scheduler", "allocator", "protocol", "parser", "index",
         "buffer", "queue", "stack", "heap", "socket", "thread pool", "file system", "database",
         "interpreter", "linker", "debugger", "kernel", "shell", "tokenizer", "hash function", "B-tree"]
ADJ = ["Lock-free", "Distributed", "Concurrent", "Incremental", "Persistent", "Adaptive", "Copy-on-write",
       "Generational", "Lazy", "Parallel", "Streaming", "Memory-safe", "Probabilistic", "Succinct"]
FIELDS = ["operating systems", "compilers", "databases", "networking", "information retrieval",
          "programming languages", "distributed systems", "computer architecture"]

pages = []  # (title, ns, redirect_target, text or None for self-closing)
for title, text in ARTICLES.items():
    pages.append((title, 0, None, text))
for title, text in TALK.items():
    pages.append((title, 1, None, text))
for title, target in REDIRECTS.items():
    pages.append((title, 0, target, f"#REDIRECT [[{target}]]\n\n{{{{R from alternative name}}}}"))

filler = []
for adj in ADJ:
    for noun in NOUNS:
        filler.append(f"{adj} {noun}")
rng.shuffle(filler)
for i, title in enumerate(filler[:150]):
    adj, noun = title.split(" ", 1)
    field = rng.choice(FIELDS)
    text = (f"A '''{title.lower()}''' is a {noun} used in {field}. "
            f"It is {adj.lower()} in the sense that its work can proceed without waiting for other parts of the system.\n\n"
            f"== Overview ==\nLike other kinds of [[{noun}]], a {title.lower()} trades memory for speed. "
            f"Implementations appear in [[Rust (programming language)|Rust]], [[C (programming language)|C]] and [[Python (programming language)|Python]] libraries.\n\n"
            f"== See also ==\n* [[{rng.choice(filler[:150])}]]\n")
    pages.append((title, 0, None, text))
    # About half of all pages are redirects: give most filler articles one.
    if i % 5 != 0:
        alias = f"{title} ({field})"
        pages.append((alias, 0, title, f"#REDIRECT [[{title}]]"))
    if i % 3 == 0:
        pages.append((f"{noun[0].upper()}{noun[1:]} ({adj.lower()})", 0, title, f"#REDIRECT [[{title}]]"))
# A category page with a self-closing (deleted) text, and one duplicate title.
pages.append(("Category:Programming languages", 14, None, None))
pages.append(("Wikipedia:Database download", 4, None, "Dumps are published at regular intervals. Each is an XML export with &lt;page&gt; elements."))

body = []
rng.shuffle(pages)
# Keep a few anchors in fixed places: the first page is an article, the last a redirect.
page_id = 10
rev_id = 1_100_000_000
dup_inserted = False
out = []
out.append('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.mediawiki.org/xml/export-0.11/ http://www.mediawiki.org/xml/export-0.11.xsd" version="0.11" xml:lang="en">\n')
out.append("""  <siteinfo>
    <sitename>Wikipedia</sitename>
    <dbname>percoresample</dbname>
    <base>https://en.wikipedia.org/wiki/Main_Page</base>
    <generator>MediaWiki 1.43.0-wmf.1</generator>
    <case>first-letter</case>
    <namespaces>
      <namespace key="-2" case="first-letter">Media</namespace>
      <namespace key="-1" case="first-letter">Special</namespace>
      <namespace key="0" case="first-letter" />
      <namespace key="1" case="first-letter">Talk</namespace>
      <namespace key="2" case="first-letter">User</namespace>
      <namespace key="3" case="first-letter">User talk</namespace>
      <namespace key="4" case="first-letter">Wikipedia</namespace>
      <namespace key="6" case="first-letter">File</namespace>
      <namespace key="10" case="first-letter">Template</namespace>
      <namespace key="14" case="first-letter">Category</namespace>
    </namespaces>
  </siteinfo>
""")
users = [("Asparagusus", 43603280), ("Grondemar", 120113), ("Киберпанк", 5512), ("東京ユーザー", 88001), ("O'Neill", 31337)]

def page_xml(title, ns, target, text):
    global page_id, rev_id
    page_id += rng.randint(1, 500)
    rev_id += rng.randint(1, 100000)
    user, uid = rng.choice(users)
    lines = ["  <page>", f"    <title>{esc(title)}</title>", f"    <ns>{ns}</ns>", f"    <id>{page_id}</id>"]
    if target is not None:
        lines.append(f'    <redirect title="{esc(target)}" />')
    lines += ["    <revision>", f"      <id>{rev_id}</id>", f"      <parentid>{rev_id - rng.randint(1, 9999)}</parentid>",
              f"      <timestamp>2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z</timestamp>",
              "      <contributor>", f"        <username>{esc(user)}</username>", f"        <id>{uid}</id>", "      </contributor>"]
    if rng.random() < 0.4:
        lines.append(f"      <comment>{esc(rng.choice(['copyedit', 'fix &lt;ref&gt; formatting', 'rv vandalism', 'Reverted edits by 192.0.2.7', 'update']))}</comment>")
    lines += [f"      <origin>{rev_id}</origin>", "      <model>wikitext</model>", "      <format>text/x-wiki</format>"]
    if text is None:
        lines.append('      <text bytes="0" sha1="phoiac9h4m842xq45sp7s6u21eteeq1" />')
        sha = "phoiac9h4m842xq45sp7s6u21eteeq1"
    else:
        # Sources write markup meant literally as &lt;page&gt;; wikitext has <page>.
        raw = text.rstrip("\n").replace("&lt;", "<").replace("&gt;", ">")
        sha = hashlib.sha1(raw.encode()).hexdigest()[:31]
        lines.append(f'      <text bytes="{len(raw.encode())}" sha1="{sha}" xml:space="preserve">{esc_text(raw)}</text>')
    lines += [f"      <sha1>{sha}</sha1>", "    </revision>", "  </page>"]
    return "\n".join(lines) + "\n"

for n, (title, ns, target, text) in enumerate(pages):
    out.append(page_xml(title, ns, target, text))
    if n == len(pages) // 2 and not dup_inserted:
        # A second page titled "Unix": the first one wins in the index.
        out.append(page_xml("Unix", 0, None, "A stray duplicate of the [[Unix]] page, as real dumps occasionally contain."))
        dup_inserted = True
out.append("</mediawiki>\n")
sys.stdout.write("".join(out))
