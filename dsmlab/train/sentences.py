"""The corpus's language: sentences from a small grammar over about 300 English words.

Small enough for a model trained for minutes on a CPU to learn, varied enough (eight templates,
most slots with 10 to 70 words) that test sentences can be ones training never saw.

Lookahead sentences: in the main grammar a word is decided once it has been heard, so a delay
longer than a word buys nothing. In real speech the words after a word often decide how it is
spelled. `lookahead_sentence` puts one of a pair of homophones, which the synthesizers speak
alike ("knight" and "night" are both n'aIt to espeak-ng, N AY1 T to flite), after a word that
does not tell them apart (a determiner, an adjective), and follows it with a verb that only
one of the two can take ("the knight bowed", "the night fell"): only a model that waits for the
verb can spell the noun. The word's index is returned with the sentence, for the corpus's
`lookahead` column.

Hesitation sentences (`hesitation_sentence`) put a filler where speakers hesitate, after a word
a sentence cannot end on ("the uh dog ..."): a probe of pauses that only the words tell from an
end of turn (`dsmlab.conversations`).
"""

from __future__ import annotations

import random

from ..conversations import UNFINISHED_AFTER

LEXICON = {
    "det": "the a every some this that my your his her our their one no".split(),
    "adj": (
        "small big old young red blue green yellow happy quiet loud bright dark warm cold "
        "soft heavy light quick slow tall short clever gentle brave tired hungry busy "
        "lazy strange simple wooden golden silver empty famous careful curious friendly "
        "angry calm"
    ).split(),
    "noun": (
        "dog cat bird horse farmer teacher doctor child river mountain garden window "
        "table chair kitchen forest village city road bridge boat train letter book song "
        "story picture flower tree apple bread coffee music paper door wall house market "
        "school engine radio camera lamp clock island ocean desert cloud storm morning "
        "evening winter summer captain pilot sailor baker singer painter neighbor "
        "student basket blanket candle pocket ladder mirror pencil jacket hammer "
        "bottle"
    ).split(),
    "verb_t": (
        "found saw carried painted opened closed watched followed pushed pulled "
        "cleaned moved fixed built sold bought lifted dropped wanted visited washed "
        "counted chased helped answered borrowed noticed remembered carried "
        "described ordered packed"
    ).split(),
    "verb_i": (
        "slept laughed waited danced smiled jumped arrived rested listened worked "
        "shouted whispered wandered"
    ).split(),
    "adv": (
        "quickly slowly quietly happily early late today again outside inside "
        "suddenly carefully rarely gladly softly twice"
    ).split(),
    "prep": "near behind under above beside across inside through beyond toward".split(),
    "name": (
        "anna peter maria james sofia david laura thomas emma oliver nina victor clara "
        "hugo george helen martin lucy"
    ).split(),
    "num": "two three four five six seven eight nine ten twelve twenty".split(),
    "plural": (
        "dogs cats birds apples books flowers boats letters songs chairs houses trees clocks lamps"
    ).split(),
}
TEMPLATES = [
    "det adj noun verb_t det noun",
    "name verb_t det adj noun prep det noun",
    "det noun verb_i adv",
    "name and name verb_t num plural",
    "prep det noun name verb_i adv",
    "det adj noun verb_i prep det adj noun",
    "name verb_t num adj plural adv",
    "det noun and det noun verb_i",
]


# Homophone pairs (spoken alike by espeak-ng, flite and festival), each word with the verbs
# that only it takes; tests/test_sentences.py checks espeak-ng's phonemes are the same.
HOMOPHONES = {
    ("knight", "night"): ("fought bowed", "fell darkened"),
    ("son", "sun"): ("cried grew", "shone rose"),
    ("tail", "tale"): ("wagged swished", "began amused"),
    ("flower", "flour"): ("bloomed wilted", "spilled thickened"),
    ("pair", "pear"): ("matched argued", "ripened rotted"),
    ("hare", "hair"): ("hopped bolted", "curled tangled"),
    ("mail", "male"): ("arrived piled", "sang roared"),
    ("sail", "sale"): ("fluttered billowed", "opened ended"),
}
HESITATIONS = ("uh", "um")  # said as a schwa by espeak-ng; WER scoring drops them (normalizers)
LOOKAHEAD_TEMPLATES = ["det H cue adv", "det adj H cue prep det noun", "prep det noun det H cue"]


def vocabulary() -> list[str]:
    homophones = {w for pair, cues in HOMOPHONES.items() for w in (*pair, *" ".join(cues).split())}
    return sorted({w for words in LEXICON.values() for w in words} | {"and"} | homophones)


def sentence(rng: random.Random) -> list[str]:
    template = rng.choice(TEMPLATES).split()
    return [rng.choice(LEXICON[slot]) if slot in LEXICON else slot for slot in template]


def lookahead_sentence(rng: random.Random) -> tuple[list[str], int]:
    """A sentence whose homophone only the verb after it decides, and the homophone's index."""
    template = rng.choice(LOOKAHEAD_TEMPLATES).split()
    pair, cues = rng.choice(list(HOMOPHONES.items()))
    member = rng.randrange(2)
    words = []
    for slot in template:
        if slot == "H":
            words.append(pair[member])
        elif slot == "cue":
            words.append(rng.choice(cues[member].split()))
        else:
            words.append(rng.choice(LEXICON[slot]) if slot in LEXICON else slot)
    return words, template.index("H")


def homophones_of(words: tuple[str, ...], lookahead: tuple[int, ...]) -> list[list[str]]:
    """For each lookahead word, the spellings spoken like it, itself included: the corpus's
    `homophones` column, so `eval.wer` can tell a wrong spelling from a word not heard."""
    return [next(list(pair) for pair in HOMOPHONES if words[k] in pair) for k in lookahead]


def text_of(words: tuple[str, ...]) -> str:
    """A planned sentence's transcript, as its row holds it."""
    return " ".join(words).capitalize() + "."


def hesitation_sentence(rng: random.Random) -> tuple[list[str], int]:
    """A sentence of the main grammar with a filler after a word it cannot end on (a
    determiner, a preposition, "and"), and the filler's index."""
    while True:
        words = sentence(rng)
        places = [k + 1 for k, w in enumerate(words[:-1]) if w in UNFINISHED_AFTER]
        if places:
            k = rng.choice(places)
            return [*words[:k], rng.choice(HESITATIONS), *words[k:]], k
